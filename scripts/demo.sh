#!/usr/bin/env bash
# The newcomer's demo: install dependencies, build, generate a small synthetic test set in the RSNA 2022 layout
# under data/demo/ (git-ignored), score it with `cspine predict` and the default models, and compare the
# predictions with the generated truth. The default models are trained on synthetic phantoms only: the numbers
# say that the pipeline works end to end, not that anything is clinically useful.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
OUT="$ROOT/data/demo"
STUDIES="${DEMO_STUDIES:-8}"

"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
mkdir -p "$OUT"
CSPINE="$BUILD_DIR/cspine"

echo
echo "== cspine info"
"$CSPINE" info
echo
echo "== cspine synth: $STUDIES synthetic neck CT studies (256 x 256, mixed transfer syntaxes) in $OUT/synth"
"$CSPINE" synth -o "$OUT/synth" -n "$STUDIES" --matrix 256 --seed 1 --test-fraction 1 --overwrite -q
echo
echo "== cspine predict (default models: models/seg.pt, models/cls.pt)"
rm -f "$OUT/submission.csv.progress.jsonl"
"$CSPINE" predict "$OUT/synth/test_images" --test-csv "$OUT/synth/test.csv" -o "$OUT/submission.csv" \
  --wide-csv "$OUT/predictions-wide.csv" --report "$OUT/report.json" --save-masks "$OUT/masks" --dicom-out "$OUT/dicom"
echo
echo "== per study (StudyInstanceUID, patient_overall, C1..C7)"
column -s, -t < "$OUT/predictions-wide.csv" 2>/dev/null || cat "$OUT/predictions-wide.csv"
echo
echo "== cspine evaluate against the generated truth (synthetic; $STUDIES studies are far too few for real figures)"
"$CSPINE" evaluate --predictions "$OUT/submission.csv" --labels "$OUT/synth/test_labels.csv" \
  --report "$OUT/report.json" --bboxes "$OUT/synth/test_bounding_boxes.csv" --bootstrap 200 2>/dev/null | grep -v '^note:'
echo
echo "demo: the Kaggle submission is $OUT/submission.csv ($(($(wc -l < "$OUT/submission.csv") - 1)) rows)"
echo "      also: $OUT/predictions-wide.csv, $OUT/report.json (per vertebra: slice range, key slice, timings),"
echo "      $OUT/masks/<UID>.nii.gz (vertebra label maps on the CT grid), the studies in $OUT/synth/test_images"
echo "      $OUT/dicom/<UID>/{seg,sr,key}.dcm (DICOM SEG, SR and key image for a PACS: docs/pacs.md)"
echo "      (models trained on synthetic phantoms only: not validated on real CT, not for clinical use)"
