#!/usr/bin/env bash
# Synth benchmark: seconds to generate one full-size study (512x512, 300 slices) with `cspine synth`,
# uncompressed and JPEG lossless SV1, render and write split, plus peak memory.
#   bench/synth.sh [slices=300] [runs=5]
# Goal: at most a few seconds per study on the 2-core machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
SLICES="${1:-300}"
RUNS="${2:-5}"
WORK="${BENCH_DIR:-$ROOT/bench/out/synth}"

CSPINE_BENCH_DEPS=1 "$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" >/dev/null
mkdir -p "$WORK"

results="$WORK/results.txt"
: > "$results"
for ts in explicit jpeg-lossless; do
  json="$WORK/$ts.json"
  # The previous output is removed before each run (not timed).
  hyperfine --warmup 1 --runs "$RUNS" --export-json "$json" --prepare "rm -rf $WORK/o" \
    -n "$ts" "$BUILD_DIR/cspine -q synth -o $WORK/o -n 1 --seed 1 --slices $SLICES --transfer-syntax $ts" >/dev/null
  # Stage split from the log of one more run.
  split=$("$BUILD_DIR/cspine" synth -o "$WORK/o" --overwrite -n 1 --seed 1 --slices "$SLICES" --transfer-syntax "$ts" 2>&1 |
          grep -o 'render [0-9.]* s, write [0-9.]* s' | head -1)
  peak=$(/usr/bin/time -f "%M" "$BUILD_DIR/cspine" -q synth -o "$WORK/o" --overwrite -n 1 --seed 1 --slices "$SLICES" \
         --transfer-syntax "$ts" 2>&1 | tail -1)
  /usr/bin/python3 - "$json" "$ts" "$split" "$peak" >> "$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"{sys.argv[2]:<14} {r['mean']:.2f} s per study (sd {r['stddev']:.2f}; {sys.argv[3]}), peak RSS {int(sys.argv[4]) // 1024} MB")
PY
done
echo
echo "synth benchmark: one 512x512x$SLICES study, $RUNS runs each, $(nproc) cores, $(date -u +%F)"
cat "$results"
