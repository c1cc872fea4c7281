#!/usr/bin/env bash
# The body of one task of a cspine job array (submitted by scripts/slurm/submit.sh; docs/cluster.md):
#   task.sh CSPINE INPUT RUN SHARD [cspine predict options...]
# scores shard SHARD (slurm, or slurm/N for a rerun of some shards) of INPUT into RUN/shards/, from RUN/plan.json.
# Signals: Slurm sends USR1 to this shell before the time limit (--signal=B:USR1@T): cspine is asked to stop
# (SIGTERM: it finishes nothing half, saves, exits 130) and the task requeues itself, so the rerun resumes from the
# shard's journal. A TERM (scancel, preemption) reaches cspine directly, which saves the same way; a preempted
# job with --requeue is requeued by Slurm itself.
set -u
CSPINE=$1 INPUT=$2 RUN=$3 SHARD=$4
shift 4
task="${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-local}}_${SLURM_ARRAY_TASK_ID:-0}"
echo "== $(date -u +%FT%TZ) task $task on $(hostname -s), start ${SLURM_RESTART_COUNT:-0} (restarts), shard $SHARD"

threads=()
if [[ -n "${SLURM_CPUS_PER_TASK:-}" && " $* " != *" --threads "* ]]; then threads=(--threads "$SLURM_CPUS_PER_TASK"); fi

child=""
time_limit=0
on_usr1() { time_limit=1; [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null; }
# A TERM from Slurm (scancel, requeue, preemption, the time limit itself) reaches every process of the job,
# cspine included: passing it on would be a second signal, which makes cspine stop at once without saving.
terminated=0
on_term() { terminated=1; }
trap on_usr1 USR1
trap on_term TERM INT

"$CSPINE" predict "$INPUT" --run-dir "$RUN" --shard "$SHARD" --plan "$RUN/plan.json" "${threads[@]}" "$@" &
child=$!
wait "$child"
rc=$?
# A trapped signal ends `wait` early (status > 128): wait for cspine itself to save and exit.
while ((rc > 128)) && kill -0 "$child" 2>/dev/null; do
  wait "$child"
  rc=$?
done
echo "== $(date -u +%FT%TZ) task $task: cspine exited $rc"
if ((rc == 130 && time_limit == 1)) && [[ -n "${SLURM_JOB_ID:-}" ]]; then
  echo "== time limit near: requeueing $task; the rerun resumes from the journal"
  if scontrol requeue "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}${SLURM_ARRAY_TASK_ID:+_$SLURM_ARRAY_TASK_ID}"; then
    # Slurm now ends this run itself and puts the task back in the queue. Exiting first races it: seen here, the
    # run's own exit (130) reached slurmctld first and the task ended FAILED, never requeued. So wait to be ended;
    # exit only if that does not happen within a minute.
    # Slurm's TERM (trapped: it sets `terminated`) means slurmctld has taken the requeue; then this run may end.
    sleep 60 &
    sleeper=$!
    while ((terminated == 0)) && kill -0 "$sleeper" 2>/dev/null; do wait "$sleeper"; done
    if ((terminated)); then
      echo "== $(date -u +%FT%TZ) task $task: ended by Slurm for the requeue"
    else
      echo "== $(date -u +%FT%TZ) task $task: not ended by the requeue within 60 s; exiting $rc"
    fi
  fi
fi
exit "$rc"
