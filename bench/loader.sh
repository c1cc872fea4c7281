#!/usr/bin/env bash
# Loader benchmark: `cspine convert` against `dcm2niix -z n` on the same 512x512 series, uncompressed and
# re-encoded as JPEG lossless SV1 (`dcmcjpeg +e1`, the RSNA 2022 encoding). Prints mean times and ratios.
#   bench/loader.sh [slices=150] [runs=10]
# Goal on a 2-core machine: ratio <= 1.0 uncompressed, <= 0.6 on JPEG lossless.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
SLICES="${1:-150}"
RUNS="${2:-10}"
WORK="${BENCH_DIR:-$ROOT/bench/out/loader}"

CSPINE_BENCH_DEPS=1 "$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" -DCSPINE_BUILD_TESTS=ON >/dev/null

if [[ ! -f "$WORK/.done-$SLICES" ]]; then
  rm -rf "$WORK"
  mkdir -p "$WORK/explicit" "$WORK/jpeg-lossless"
  echo "bench: writing a 512x512x$SLICES series"
  "$BUILD_DIR/tests/cspine_make_series" "$WORK/explicit" 512 "$SLICES" explicit
  for f in "$WORK"/explicit/*.dcm; do dcmcjpeg +e1 "$f" "$WORK/jpeg-lossless/$(basename "$f")"; done
  touch "$WORK/.done-$SLICES"
fi

results="$WORK/results.txt"
: > "$results"
for kind in explicit jpeg-lossless; do
  json="$WORK/$kind.json"
  hyperfine --warmup 2 --runs "$RUNS" \
    --prepare "rm -rf $WORK/o && mkdir -p $WORK/o" \
    --export-json "$json" \
    -n dcm2niix "dcm2niix -z n -f ref -o $WORK/o $WORK/$kind" \
    -n cspine "$BUILD_DIR/cspine -q convert $WORK/$kind -o $WORK/o/cspine.nii" >/dev/null
  /usr/bin/python3 - "$json" "$kind" "$(du -sh "$WORK/$kind" | cut -f1)" >> "$results" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
d, c = r["dcm2niix"], r["cspine"]
print(f"{sys.argv[2]:<14} {sys.argv[3]:>6}  dcm2niix {d['mean']*1000:7.1f} ms (sd {d['stddev']*1000:5.1f})"
      f"  cspine {c['mean']*1000:7.1f} ms (sd {c['stddev']*1000:5.1f})  ratio cspine/dcm2niix {c['mean']/d['mean']:.2f}")
PY
done
# Peak memory of one run each (the volume alone is 512*512*slices*2 bytes).
for kind in explicit jpeg-lossless; do
  rm -rf "$WORK/o" && mkdir -p "$WORK/o"
  d=$(/usr/bin/time -f "%M" dcm2niix -z n -f ref -o "$WORK/o" "$WORK/$kind" 2>&1 >/dev/null | tail -1)
  c=$(/usr/bin/time -f "%M" "$BUILD_DIR/cspine" -q convert "$WORK/$kind" -o "$WORK/o/c.nii" 2>&1 | tail -1)
  echo "$kind peak RSS: dcm2niix $((d / 1024)) MB, cspine $((c / 1024)) MB" >> "$results"
done
echo
echo "loader benchmark: 512x512x$SLICES, $RUNS runs each, $(nproc) cores, $(date -u +%F)"
cat "$results"
