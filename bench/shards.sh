#!/usr/bin/env bash
# Cluster benchmark (docs/cluster.md): on a single-node Slurm started for the purpose (as root, Debian's
# slurmctld/slurmd), the same studies as 1 shard and as 4 shards through scripts/slurm/submit.sh, the per-task
# overhead (start, model load, indexing its studies), seconds per study, the merge, and `cspine plan`'s indexing
# time per 1,000 studies. On 2 cores the gain of 4 shards is small: the figures are for the projection in the docs.
#   bench/shards.sh [studies=16] [matrix=128] [slices=100] [index_studies=200]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
if [[ -z "${BENCH_NO_SETUP:-}" ]]; then
  "$ROOT/scripts/install-deps.sh"
  "$ROOT/scripts/build.sh" >/dev/null
fi
exec /usr/bin/python3 "$ROOT/bench/shards.py" "${CSPINE:-$BUILD_DIR/cspine}" "${BENCH_DIR:-$ROOT/bench/out/shards}" "$@"
