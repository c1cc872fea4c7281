#!/usr/bin/env bash
# Writes a seed corpus for every fuzz target into OUTDIR/<target>/ (generated, git-ignored; scripts/fuzz.sh
# makes it in build-fuzz/seeds when missing).
#
#   fuzz/make-seeds.sh OUTDIR
#
# DICOM (fuzz_pixel_decode, fuzz_dicom_index): the real samples in ../shared/dicom-samples (every transfer
# syntax, wg04, a few gantry-tilt slices; override with CSPINE_SAMPLES_DIR), plus small synthetic studies
# (64 x 64, 16 slices) from `cspine synth` in every transfer syntax it writes and with its injected defects.
# For fuzz_dicom_index, some seeds are several slices joined by the FUZZSPLT marker (the harness splits
# there into files of one folder). The cspine used is $CSPINE_BINARY, else build/cspine; without one the
# synthetic seeds are left out (with a warning).
# Contracts (fuzz_contract): the cspine.json inside models/*.pt and models/test/*.pt, and the committed seeds.
# Tables (fuzz_csv): synth's CSVs, and the committed seeds.
# The committed seeds in fuzz/seeds/<target>/ are always copied too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if (($# != 1)); then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUT="$1"
SAMPLES="${CSPINE_SAMPLES_DIR:-$ROOT/../shared/dicom-samples}"
CSPINE="${CSPINE_BINARY:-$ROOT/build/cspine}"
TARGETS=(fuzz_dicom_index fuzz_pixel_decode fuzz_contract fuzz_csv)
for t in "${TARGETS[@]}"; do mkdir -p "$OUT/$t"; done
chmod -R u+w "$OUT"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Committed seeds.
for t in "${TARGETS[@]}"; do
  if compgen -G "$ROOT/fuzz/seeds/$t/*" >/dev/null; then cp "$ROOT/fuzz/seeds/$t/"* "$OUT/$t/"; fi
done

# Real samples: one file is one seed for both DICOM targets.
if [[ -d "$SAMPLES" ]]; then
  n=0
  while IFS= read -r f; do
    name="real-$(echo "${f#"$SAMPLES"/}" | tr '/' '_')"
    cp "$f" "$OUT/fuzz_pixel_decode/$name"
    cp "$f" "$OUT/fuzz_dicom_index/$name"
    n=$((n + 1))
  done < <(find "$SAMPLES/transfer-syntaxes" "$SAMPLES/wg04" -type f ! -name '*.md' | sort;
           find "$SAMPLES/gantry-tilt-ge" -type f -name '*.dcm' | sort | head -3)
  # Two consecutive tilted slices as one study folder: the tilt and spacing code sees a real pair.
  if [[ -f "$SAMPLES/gantry-tilt-ge/01.dcm" && -f "$SAMPLES/gantry-tilt-ge/02.dcm" ]]; then
    { cat "$SAMPLES/gantry-tilt-ge/01.dcm"; printf FUZZSPLT; cat "$SAMPLES/gantry-tilt-ge/02.dcm"; } \
      >"$OUT/fuzz_dicom_index/real-gantry-tilt-pair"
  fi
  echo "make-seeds: $n real DICOM samples from $SAMPLES"
else
  echo "make-seeds: WARNING: no DICOM samples at $SAMPLES" >&2
fi

# Synthetic studies, one per transfer syntax, and one with every injected defect.
if [[ -x "$CSPINE" ]]; then
  # An instrumented cspine (build-fuzz, build-asan) must not fail on leak reports at exit.
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  syntaxes=(explicit implicit big-endian deflated jpeg-lossless jpeg-ls rle j2k)
  for ts in "${syntaxes[@]}" defects; do
    args=(--transfer-syntax "$ts")
    if [[ $ts == defects ]]; then args=(--transfer-syntax mix --inject missing-slices,truncated,duplicate,localizer,other-series); fi
    if ! "$CSPINE" -q synth -o "$tmp/$ts" -n 1 --matrix 64 --slices 16 --seed 14 --test-fraction 0 \
      --fracture-rate 1 --threads 1 "${args[@]}" >/dev/null 2>"$tmp/$ts.err"; then
      echo "make-seeds: WARNING: cspine synth --transfer-syntax $ts failed: $(tail -1 "$tmp/$ts.err")" >&2
      continue
    fi
    mapfile -t slices < <(find "$tmp/$ts" -name '*.dcm' -path '*_images/*' | sort -V)
    ((${#slices[@]} > 0)) || continue
    # The middle slice (vertebrae, not air) for the decoder, and for the index.
    mid="${slices[$((${#slices[@]} / 2))]}"
    cp "$mid" "$OUT/fuzz_pixel_decode/synth-$ts.dcm"
    cp "$mid" "$OUT/fuzz_dicom_index/synth-$ts.dcm"
    # Three slices (or, with defects, every file: localizer, other series, truncated file) as one folder.
    if [[ $ts == defects ]]; then pick=("${slices[@]}"); else pick=("${slices[@]:0:3}"); fi
    for ((i = 0; i < ${#pick[@]} && i < 8; i++)); do
      ((i == 0)) || printf FUZZSPLT
      cat "${pick[$i]}"
    done >"$OUT/fuzz_dicom_index/synth-$ts-series"
    if [[ $ts == explicit ]]; then
      for csv in "$tmp/$ts"/*.csv; do cp "$csv" "$OUT/fuzz_csv/synth-$(basename "$csv")"; done
      # Labels, a form feed, then predictions: read_predictions against other labels (fuzz/fuzz_csv.cpp).
      { cat "$tmp/$ts/train.csv"; printf '\f'; cat "$tmp/$ts/sample_submission.csv"; } >"$OUT/fuzz_csv/synth-labels-ff-submission"
    fi
  done
  echo "make-seeds: synthetic studies from $CSPINE"
else
  echo "make-seeds: WARNING: no cspine at $CSPINE (set CSPINE_BINARY): no synthetic DICOM seeds" >&2
fi

# Contracts embedded in the model files (a TorchScript file is a zip; the contract is <name>/extra/cspine.json).
/usr/bin/python3 - "$ROOT/models" "$OUT/fuzz_contract" <<'PY'
import glob, os, sys, zipfile
models, out = sys.argv[1], sys.argv[2]
n = 0
for p in sorted(glob.glob(os.path.join(models, "*.pt")) + glob.glob(os.path.join(models, "test", "*.pt"))):
    try:
        z = zipfile.ZipFile(p)
    except zipfile.BadZipFile:
        continue
    for name in z.namelist():
        if name.endswith("/extra/cspine.json"):
            with open(os.path.join(out, "model-" + os.path.basename(p)[:-3] + ".json"), "wb") as f:
                f.write(z.read(name))
            n += 1
print(f"make-seeds: {n} contracts from {models}")
PY

chmod -R u+w "$OUT"  # copies of read-only samples: make-seeds may run again over them
for t in "${TARGETS[@]}"; do
  echo "make-seeds: $t: $(find "$OUT/$t" -type f | wc -l) seeds, $(du -sh "$OUT/$t" | cut -f1)"
done
