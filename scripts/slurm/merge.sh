#!/usr/bin/env bash
# The merge job of a cspine run (submitted by scripts/slurm/submit.sh with --dependency=afterany on the array):
#   merge.sh CSPINE RUN [cspine merge options, e.g. --test-csv F]
# writes RUN/submission.csv, RUN/predictions-wide.csv and RUN/report.json; exits 7 naming the shards to rerun
# when some studies failed or were not scored (docs/cluster.md, "Failure playbook").
set -u
CSPINE=$1 RUN=$2
shift 2
echo "== $(date -u +%FT%TZ) merge of $RUN (job ${SLURM_JOB_ID:-local})"
"$CSPINE" merge "$RUN" -o "$RUN/submission.csv" --wide-csv "$RUN/predictions-wide.csv" --report "$RUN/report.json" "$@"
rc=$?
echo "== $(date -u +%FT%TZ) merge exited $rc"
exit "$rc"
