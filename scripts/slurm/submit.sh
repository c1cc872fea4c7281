#!/usr/bin/env bash
# Submits one cspine batch as a Slurm job array plus a merge job (docs/cluster.md):
#
#   scripts/slurm/submit.sh INPUT RUN --shards N [--gpus-per-task G] [--cpus-per-task C] [--partition P]
#                           [--time T] [--only K1,K2,...] [--signal-seconds S] [--merge-mem M]
#                           [extra sbatch options...]
#                           [-- cspine predict options, e.g. --test-csv F --batch-size 64]
#
# - makes RUN/plan.json with `cspine plan` here, once, unless it exists (the tasks read it instead of each walking
#   INPUT);
# - submits the array (one task per shard, --requeue, --open-mode=append, logs in RUN/logs/shard-<K>.log,
#   USR1 S seconds before the time limit so that cspine saves and the task requeues itself);
# - submits the merge with --dependency=afterany on the array (afterok would wait forever after one failed
#   task): RUN/submission.csv, RUN/predictions-wide.csv, RUN/report.json; exit 7 names the shards to rerun;
#   --merge-mem M is its --mem (the report of 100,000 studies needs ~8 GB);
# - prints the two job ids: `array_job=ID` and `merge_job=ID`.
# --only K1,K2 reruns those shards only (array task ids = shard numbers) and merges again.
# Extra sbatch options (--account, --qos, --mem, ...) go to both jobs. The binary is $CSPINE, else `cspine` on
# PATH, else build/cspine of this checkout. Paths are made absolute.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2; exit 2; }
(($# >= 2)) || usage
INPUT=$(realpath -m "$1")
RUN=$(realpath -m "$2")
shift 2
shards="" gpus="" cpus="" partition="" time_limit="" only="" signal_seconds=120 merge_mem=""
sbatch_extra=() predict_args=() merge_args=()
while (($#)); do
  case "$1" in
    --shards) shards=$2; shift 2 ;;
    --gpus-per-task) gpus=$2; shift 2 ;;
    --cpus-per-task) cpus=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --signal-seconds) signal_seconds=$2; shift 2 ;;
    --merge-mem) merge_mem=$2; shift 2 ;;
    -h|--help) usage ;;
    --) shift; predict_args=("$@"); break ;;
    *) sbatch_extra+=("$1"); shift ;;
  esac
done
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: --shards N is required (a whole number >= 1)" >&2; exit 2; }
[[ -e "$INPUT" ]] || { echo "submit.sh: input '$INPUT' does not exist" >&2; exit 3; }
# The merge needs the test CSV the shards used.
for ((i = 0; i < ${#predict_args[@]}; i++)); do
  if [[ "${predict_args[$i]}" == "--test-csv" ]] && ((i + 1 < ${#predict_args[@]})); then
    predict_args[i + 1]=$(realpath -m "${predict_args[$i + 1]}")
    merge_args=(--test-csv "${predict_args[$i + 1]}")
  fi
done

CSPINE=${CSPINE:-$(command -v cspine || true)}
[[ -n "$CSPINE" ]] || CSPINE="$HERE/../../build/cspine"
CSPINE=$(realpath -m "$CSPINE")
[[ -x "$CSPINE" ]] || { echo "submit.sh: cspine binary not found ($CSPINE); set CSPINE" >&2; exit 2; }

mkdir -p "$RUN/logs"
if [[ ! -f "$RUN/plan.json" ]]; then
  echo "submit.sh: indexing $INPUT once into $RUN/plan.json" >&2
  "$CSPINE" plan "$INPUT" -o "$RUN/plan.json" ${cpus:+--threads "$cpus"}
fi

common=()
[[ -n "$partition" ]] && common+=(--partition "$partition")
task_opts=(--requeue --open-mode=append --signal="B:USR1@$signal_seconds" --job-name=cspine-shard
           --output="$RUN/logs/shard-%a.log")
[[ -n "$gpus" ]] && task_opts+=(--gres="gpu:$gpus")
[[ -n "$cpus" ]] && task_opts+=(--cpus-per-task "$cpus")
[[ -n "$time_limit" ]] && task_opts+=(--time "$time_limit")
if [[ -n "$only" ]]; then
  [[ "$only" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "submit.sh: --only takes shard numbers, e.g. 3,17" >&2; exit 2; }
  array="$only" spec="slurm/$shards"
else
  array="0-$((shards - 1))" spec="slurm"
fi
array_job=$(sbatch --parsable --array="$array" "${common[@]}" "${task_opts[@]}" "${sbatch_extra[@]}" \
  "$HERE/task.sh" "$CSPINE" "$INPUT" "$RUN" "$spec" "${predict_args[@]}")
array_job=${array_job%%;*}
merge_job=$(sbatch --parsable --dependency="afterany:$array_job" --job-name=cspine-merge "${common[@]}" "${sbatch_extra[@]}" \
  ${merge_mem:+--mem="$merge_mem"} --output="$RUN/logs/merge.log" --open-mode=append "$HERE/merge.sh" "$CSPINE" "$RUN" "${merge_args[@]}")
merge_job=${merge_job%%;*}
echo "array_job=$array_job"
echo "merge_job=$merge_job"
