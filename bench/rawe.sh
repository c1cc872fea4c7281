#!/usr/bin/env bash
# The RSNA 2022 second-place models (team RAWE): the team's notebook, run unchanged by the oracle
# (../shared/oracles/rawe), against `cspine predict` with the same checkpoints imported by scripts/cspine_import.py,
# on the same synthetic studies, same threads, full sizes by default. Prints seconds per study (the oracle's whole
# run and cspine's by stage), the ratio, and the stage-by-stage parity figures (scripts/cspine_models/rawe_parity.py).
#
#   bench/rawe.sh [--studies N] [--slices S] [--matrix M] [--seg-size 512] [--cls-size 384] [--threads 2]
#                 [--cls ARCH ...] [--out DIR] [--device cpu|cuda]
#
# Defaults: 1 study of 48 slices at 512x512, RAWE's sizes (512 / 384) and ensemble architectures
# (tf_efficientnetv2_s, resnest50d). Random checkpoints (make_checkpoints.py --vertebra-like): timings and parity,
# not accuracy. At full size the oracle needs about 3 s per slice for the segmentation and 30-60 s per vertebra
# and member on the 2-core development VM: this is a manual benchmark, not a test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORACLE="${CSPINE_RAWE_ORACLE:-$ROOT/../shared/oracles/rawe}"
B="${CSPINE_BINARY:-$ROOT/build/cspine}"
PY=/usr/bin/python3
studies=1 slices=48 matrix=512 seg=512 cls=384 threads=2 out="$ROOT/bench/out/rawe" device=cpu archs=()
while (($#)); do
  case "$1" in
    --studies) studies=$2; shift 2 ;;
    --slices) slices=$2; shift 2 ;;
    --matrix) matrix=$2; shift 2 ;;
    --seg-size) seg=$2; shift 2 ;;
    --cls-size) cls=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --cls) archs+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "rawe.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
((${#archs[@]})) || archs=(tf_efficientnetv2_s resnest50d)
[[ -f "$ORACLE/run_rawe.py" ]] || { echo "rawe.sh: the oracle is not at $ORACLE" >&2; exit 2; }
[[ -x "$B" ]] || { echo "rawe.sh: build cspine first (scripts/build.sh) or set CSPINE_BINARY" >&2; exit 2; }
rm -rf "$out"; mkdir -p "$out"
log() { echo "[rawe.sh $(date +%H:%M:%S)] $*"; }
now() { date +%s.%N; }

log "synth: $studies studies, $slices slices, ${matrix}x$matrix"
"$B" -q synth -o "$out/data" -n "$studies" --seed 11 --matrix "$matrix" --slices "$slices" --test-fraction 1
cls_args=(); for a in "${archs[@]}"; do cls_args+=(--cls "$a"); done
log "checkpoints: segmentation + ${archs[*]}"
"$PY" "$ORACLE/make_checkpoints.py" --out "$out/ck" --vertebra-like "${cls_args[@]}" >"$out/checkpoints.log"
read -r -a run_args <"$out/ck/run_args.txt"
log "import at $seg / $cls"
t0=$(now)
"$PY" "$ROOT/scripts/cspine_import.py" rawe "${run_args[@]}" --seg-size "$seg" --cls-size "$cls" --lib "$ORACLE/lib" \
  --threads "$threads" -o "$out/models" | tee "$out/import.log"
t_import=$(awk -v a="$(now)" -v b="$t0" "BEGIN{print a-b}")

log "oracle (the notebook, one study at a time, $threads threads)"
t0=$(now)
"$PY" "$ORACLE/run_rawe.py" --images "$out/data/test_images" "${run_args[@]}" --seg-size "$seg" --cls-size "$cls" \
  --threads "$threads" --device "$device" --out "$out/oracle.csv" --dump "$out/oracle-dump" --quiet 2>"$out/oracle.log"
t_oracle=$(awk -v a="$(now)" -v b="$t0" "BEGIN{print a-b}")

log "cspine predict ($threads threads)"
t0=$(now)
"$B" -q predict "$out/data/test_images" --seg-model "$out/models/seg.pt" --cls-model "$out/models/cls.pt" \
  -o "$out/cspine.csv" --report "$out/report.json" --dump-stages "$out/cspine-dump" --threads "$threads" \
  --device "$device" 2>"$out/cspine.log"
t_cspine=$(awk -v a="$(now)" -v b="$t0" "BEGIN{print a-b}")

(cd "$ROOT/scripts" && "$PY" -m cspine_models.rawe_parity "$out/oracle-dump" "$out/cspine-dump" "$out/oracle.csv" \
  "$out/cspine.csv" --json "$out/parity.json") | tee "$out/parity.txt" || true

"$PY" - "$out" "$studies" "$t_oracle" "$t_cspine" "$t_import" "$seg" "$cls" "$threads" "${archs[*]}" <<'PYEOF'
import json, sys
out, n, t_o, t_c, t_i, seg, cls, threads, archs = sys.argv[1:]
n, t_o, t_c, t_i = int(n), float(t_o), float(t_c), float(t_i)
rep = json.load(open(f"{out}/report.json"))
par = json.load(open(f"{out}/parity.json"))
stages = ["load", "segment", "cleanup", "classify", "masks"]
ok = [e for e in rep["studies"] if e.get("status") == "ok"]
mean = {s: sum(e["seconds"][s] for e in ok) / max(len(ok), 1) for s in stages}
lines = [f"RAWE models, segmentation {seg}, classifier {cls}, members {archs}, {threads} threads, {n} studies",
         f"import (once): {t_i:.1f} s",
         f"oracle (notebook):  {t_o / n:.1f} s per study (whole run {t_o:.1f} s, imports and model loads included)",
         f"cspine predict:     {t_c / n:.1f} s per study (whole run {t_c:.1f} s); by stage: " +
         ", ".join(f"{s} {mean[s]:.1f}" for s in stages) +
         f"; in the models: segment {sum(e['seconds']['segment_model'] for e in ok) / max(len(ok), 1):.1f}, "
         f"classify {sum(e['seconds']['classify_model'] for e in ok) / max(len(ok), 1):.1f}",
         f"ratio (oracle / cspine, whole runs): {t_o / t_c:.2f}x",
         f"parity: {json.dumps(par['max'])}; {'no difference beyond tolerance' if not par['failures'] else 'DIFFERS: ' + '; '.join(par['failures'][:3])}"]
open(f"{out}/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
