#!/usr/bin/env bash
# The newcomer's demo: install dependencies, build, look at a real CT series and convert it to NIfTI, then
# generate a small synthetic data set in the RSNA 2022 layout and score the constant baseline on it.
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
echo "== cspine synth -o $OUT/synth -n 6 --matrix 256 --slices 120 --seed 1 --preview"
"$CSPINE" synth -o "$OUT/synth" -n 6 --matrix 256 --slices 120 --seed 1 --test-fraction 0.5 --preview --overwrite
echo
echo "== cspine evaluate (the 0.5 baseline of sample_submission.csv against the test labels)"
"$CSPINE" evaluate --predictions "$OUT/synth/sample_submission.csv" --labels "$OUT/synth/test_labels.csv" --bootstrap 200
echo
echo "demo: wrote $OUT/series.nii.gz (int16 HU), $OUT/inspect.json and a synthetic data set in $OUT/synth"
echo "      (train.csv, train_bounding_boxes.csv, segmentations/, previews/*.png)"
