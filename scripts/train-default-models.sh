#!/usr/bin/env bash
# Reproduces the default models in models/ from scratch: synthetic training data, both trainings, export,
# held-out metrics. On the 2-core CPU machine the models/README.md numbers come from, it takes about
# 100 minutes; pass --device cuda through TRAIN_ARGS on a GPU machine (and more epochs: EPOCHS_SEG/EPOCHS_CLS).
#   scripts/train-default-models.sh [WORK_DIR]        (default: data/generated/default-models)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$ROOT/data/generated/default-models}"
PY=/usr/bin/python3
TRAIN=("$PY" "$ROOT/scripts/cspine_train.py")
TRAIN_ARGS=(${TRAIN_ARGS:-})
STUDIES="${STUDIES:-320}"

"$ROOT/scripts/install-deps.sh"
[[ -x "$ROOT/build/cspine" ]] || "$ROOT/scripts/build.sh"
mkdir -p "$WORK"

# 320 studies at 256 x 256 (the in-plane resize to the model size makes the matrix matter little), 25% test.
[[ -f "$WORK/data/train.csv" ]] || "$ROOT/build/cspine" synth -o "$WORK/data" -n "$STUDIES" --matrix 256 --seed 2026 \
  --test-fraction 0.25

# Segmentation: 128 x 128, cross-entropy + soft Dice. (The shipped model was trained in two phases, 2 epochs of
# cross-entropy alone and then 7 with Dice from those weights; one run with Dice from the start is the recipe.)
"${TRAIN[@]}" seg --data "$WORK/data" --out "$WORK/seg" --size 128 --epochs "${EPOCHS_SEG:-8}" --steps-per-epoch 250 \
  --batch-size 16 --lr 2e-3 "${TRAIN_ARGS[@]}"
"${TRAIN[@]}" export "$WORK/seg/best.pt" "$WORK/seg.pt" --data-name "cspine synth --seed 2026 -n $STUDIES --matrix 256"

# Classifier: 24 slices of 64 x 64 per vertebra, CNN initialised from the segmentation encoder, balanced vertebrae.
"${TRAIN[@]}" cls --data "$WORK/data" --out "$WORK/cls" --size 64 --slices 24 --loss vertebra --batch-size 8 \
  --epochs "${EPOCHS_CLS:-10}" --steps-per-epoch 60 --lr 1e-3 --init-from-seg "$WORK/seg/best.pt" "${TRAIN_ARGS[@]}"
# Fine-tuning on crops from the segmentation's predicted masks (what the classifier sees at inference).
"${TRAIN[@]}" masks --data "$WORK/data" --seg "$WORK/seg.pt" --out "$WORK/pred-masks"
"${TRAIN[@]}" cls --data "$WORK/data" --out "$WORK/cls-pm" --masks "$WORK/pred-masks" --init "$WORK/cls/best.pt" \
  --size 64 --slices 24 --loss vertebra --batch-size 8 --epochs 5 --steps-per-epoch 60 --lr 5e-4 "${TRAIN_ARGS[@]}"
"${TRAIN[@]}" export "$WORK/cls-pm/best.pt" "$WORK/cls.pt" --data-name "cspine synth --seed 2026 -n $STUDIES --matrix 256"

# Held-out metrics through the whole Python pipeline (predicted masks): the test split of the synthetic set.
"${TRAIN[@]}" evaluate --data "$WORK/data" --seg "$WORK/seg.pt" --cls "$WORK/cls.pt" --split test --json "$WORK/test-metrics.json"
"${TRAIN[@]}" evaluate --data "$WORK/data" --seg "$WORK/seg.pt" --cls "$WORK/cls.pt" --split val --json "$WORK/val-metrics.json"
echo "models in $WORK (copy seg.pt and cls.pt to models/ to make them the defaults)"
