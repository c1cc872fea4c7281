#!/usr/bin/env bash
# The newcomer's demo: install dependencies, build, then look at a real CT series and convert it to NIfTI.
# (Once `cspine predict` exists, this becomes the full prediction demo on generated studies.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
OUT="$ROOT/data/demo"

"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" -DCSPINE_BUILD_TESTS=ON
mkdir -p "$OUT"

SAMPLE="${CSPINE_SAMPLES_DIR:-$ROOT/../shared/dicom-samples}/gantry-tilt-ge"
if [[ ! -d "$SAMPLE" ]]; then
  echo "demo: real samples not found at $SAMPLE; writing a synthetic series instead"
  SAMPLE="$OUT/synthetic-series"
  rm -rf "$SAMPLE"
  "$BUILD_DIR/tests/cspine_make_series" "$SAMPLE" 256 40 jpeg-lossless
fi

CSPINE="$BUILD_DIR/cspine"
echo
echo "== cspine info"
"$CSPINE" info
echo
echo "== cspine inspect $SAMPLE"
"$CSPINE" inspect "$SAMPLE"
echo
echo "== cspine convert $SAMPLE -o $OUT/series.nii.gz"
"$CSPINE" convert "$SAMPLE" -o "$OUT/series.nii.gz"
"$CSPINE" inspect --json "$SAMPLE" > "$OUT/inspect.json"
echo
echo "demo: wrote $OUT/series.nii.gz (int16 HU) and $OUT/inspect.json"
