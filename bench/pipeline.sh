#!/usr/bin/env bash
# End-to-end benchmark of `cspine predict` against its Python peer (scripts/reference_predict.py) on the same
# full-size synthetic studies, same models, same thread count, in one run; plus the floor (the two models'
# forward passes alone on the same studies' inputs, built beforehand: bench/model_floor.cpp).
#   bench/pipeline.sh [studies=6] [threads=all cores] [extra cspine predict args, e.g. --device cuda --fp16]
# BENCH_REPEAT=N rounds (default 2): cspine, the peer and the floor interleaved, the best round of each counts.
# Studies: 512 x 512, 250-350 slices, half uncompressed and half JPEG lossless SV1 (the RSNA encoding);
# BENCH_SYNTAXES="explicit" for uncompressed only. PY, CSPINE, CSPINE_MODEL_FLOOR override the tools.
# Prints seconds per study per stage, studies per second, peak memory (/usr/bin/time -v), the ratios, and the
# largest difference between the two tools' probabilities.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
STUDIES="${1:-6}"
THREADS="${2:-$(nproc)}"
shift $(( $# > 2 ? 2 : $# ))
EXTRA=("$@")
WORK="${BENCH_DIR:-$ROOT/bench/out/pipeline}"
PY="${PY:-/usr/bin/python3}"
SYNTAXES=(${BENCH_SYNTAXES:-explicit jpeg-lossless})
CSPINE="${CSPINE:-$BUILD_DIR/cspine}"
FLOOR="${CSPINE_MODEL_FLOOR:-$BUILD_DIR/cspine_model_floor}"

if [[ -z "${BENCH_NO_SETUP:-}" ]]; then
  CSPINE_BENCH_DEPS=1 "$ROOT/scripts/install-deps.sh"
  "$ROOT/scripts/build.sh" >/dev/null
fi

data="$WORK/studies-$STUDIES-$(IFS=-; echo "${SYNTAXES[*]}")"
if [[ ! -f "$data/.done" ]]; then
  rm -rf "$data" && mkdir -p "$data/input"
  for i in $(seq 1 "$STUDIES"); do
    ts=${SYNTAXES[$(( (i - 1) * ${#SYNTAXES[@]} / STUDIES ))]}
    slices=$(( 250 + (i * 37) % 101 ))
    "$CSPINE" -q synth -o "$data/s$i" -n 1 --matrix 512 --slices "$slices" --seed "$((900 + i))" --test-fraction 1 \
      --transfer-syntax "$ts"
    mv "$data/s$i/test_images/"* "$data/input/"
    rm -rf "$data/s$i"
  done
  touch "$data/.done"
fi
echo "bench: $STUDIES studies in $data/input ($(du -sh "$data/input" | cut -f1)), $THREADS threads, $(nproc) cores," \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

# Wall time and peak memory of a command, in /usr/bin/time -v's words (Python's resource module where the
# `time` package is missing, as on a GPU machine without Debian packages).
timed() {
  local report="$1"; shift
  if [[ -x /usr/bin/time && -z "${BENCH_PY_TIMER:-}" ]]; then
    /usr/bin/time -v -o "$report" "$@"
  else
    "$PY" - "$report" "$@" <<'PYT'
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[2:])
wall = time.monotonic() - t
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(f"Elapsed (wall clock) time (h:mm:ss or m:ss): {int(wall // 60)}:{wall % 60:05.2f}\n"
                             f"Maximum resident set size (kbytes): {kb}\n")
sys.exit(rc)
PYT
  fi
}

# BENCH_REPEAT rounds (default 2), the three tools interleaved in each round; each tool's best round counts
# (the minimum is the robust estimate on a shared, noisy machine).
REPEAT="${BENCH_REPEAT:-2}"
out="$WORK/run"
rm -rf "$out" && mkdir -p "$out"
pydev=cpu
for a in "${EXTRA[@]}"; do [[ $a == cuda* ]] && pydev=cuda; done
dev_args=()
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
  case "${EXTRA[$i]}" in --device) dev_args+=(--device "${EXTRA[$((i + 1))]}") ;; --fp16) dev_args+=(--fp16) ;; esac
done
for r in $(seq 1 "$REPEAT"); do
  timed "$out/cspine.$r.time" "$CSPINE" -q predict "$data/input" -o "$out/cspine.$r.csv" \
    --wide-csv "$out/cspine-wide.csv" --report "$out/cspine.$r.json" --threads "$THREADS" "${EXTRA[@]}"
  timed "$out/python.$r.time" "$PY" "$ROOT/scripts/reference_predict.py" "$data/input" -o "$out/python.$r.csv" \
    --wide-csv "$out/python-wide.csv" --timings "$out/python.$r.json" --threads "$THREADS" --device "$pydev" \
    2>"$out/python.$r.log"
  "$FLOOR" "$ROOT/models/seg.pt" "$ROOT/models/cls.pt" "$data/input" --threads "$THREADS" "${dev_args[@]}" > "$out/floor.$r.json"
done

"$PY" - "$out" "$STUDIES" "$REPEAT" <<'PY'
import json, re, sys
from pathlib import Path
out, n, repeat = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def time_v(path):
    t = path.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1).split(":")
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    return secs, rss

def best(tool):  # (wall, rss, round) of the fastest round
    runs = [(*time_v(out / f"{tool}.{r}.time"), r) for r in range(1, repeat + 1)]
    return min(runs), [w for w, _, _ in runs]

(cw, cr, ci), call = best("cspine")
(pw, pr, pi), pall = best("python")
rep = json.loads((out / f"cspine.{ci}.json").read_text())
ok = [s for s in rep["studies"] if s["status"] == "ok"]
stages = ["load", "wait", "segment", "cleanup", "classify"]
c = {k: sum(s["seconds"][k] for s in ok) / len(ok) for k in stages}
cm = sum(s["seconds"]["segment_model"] + s["seconds"]["classify_model"] for s in ok) / len(ok)
pt = json.loads((out / f"python.{pi}.json").read_text())["studies"]
p = {k: sum(t[k] for t in pt.values()) / len(pt) for k in ("load", "segment", "cleanup", "classify")}
p["wait"] = p["load"]  # the peer loads each study in turn
floors = [json.loads((out / f"floor.{r}.json").read_text()) for r in range(1, repeat + 1)]
floor = min(floors, key=lambda f: f["mean_seconds_per_study"])

def wide(path):
    rows = {}
    for line in path.read_text().splitlines()[1:]:
        f = line.split(",")
        rows[f[0]] = [float(x) for x in f[1:]]
    return rows

a, b = wide(out / "cspine-wide.csv"), wide(out / "python-wide.csv")
diff = max(abs(x - y) for u in a for x, y in zip(a[u], b[u]))
listed = lambda xs, fmt: ", ".join(format(x, fmt) for x in xs)
print(f"best of {repeat} round(s); walls cspine {listed(call, '.1f')} s, python {listed(pall, '.1f')} s, "
      f"floor {listed([f['mean_seconds_per_study'] for f in floors], '.2f')} s per study")
print("load: seconds spent loading (in a background thread when cspine prefetches); wait: what the models waited for it")
print(f"{'seconds per study':<22}" + "".join(f"{k:>10}" for k in stages) + f"{'wall/study':>12}{'studies/s':>11}{'peak RSS':>10}")
for name, d, wall, rss in (("cspine predict", c, cw, cr), ("reference_predict.py", p, pw, pr)):
    print(f"{name:<22}" + "".join(f"{d[k]:>10.2f}" for k in stages) + f"{wall / n:>12.2f}"
          f"{n / wall:>11.3f}{rss:>8.0f} MB")
fl = floor["mean_seconds_per_study"]
print(f"floor (models alone, {floor['device']}{' fp16' if floor['fp16'] else ''}): {fl:.2f} s per study; "
      f"cspine's in-run model time {cm:.2f} s")
print(f"ratios: cspine/python studies per second {pw / cw:.2f} (goal >= 1.5 on CPU, >= 3 on GPU); "
      f"cspine wall per study / floor {cw / n / fl:.2f} (goal <= 1.15), / in-run model time {cw / n / cm:.2f}; "
      f"model load and start-up included in the wall times")
# Without start-up (process, LibTorch, model loading, indexing): the per-study loop alone, what a long batch
# converges to. cspine: the sum of each study's critical path (report "total"); the peer: its stages.
cs = sum(s["seconds"]["total"] for s in ok)
ps = sum(sum(t[k] for k in ("load", "segment", "cleanup", "classify")) for t in pt.values())
print(f"without start-up: cspine {len(ok) / cs:.3f} studies/s ({cs / len(ok):.2f} s per study, {cs / len(ok) / fl:.2f}x "
      f"the floor), python {len(pt) / ps:.3f} studies/s; ratio {ps / len(pt) / (cs / len(ok)):.2f}")
print(f"largest |cspine - python| probability: {diff:.2e} over {len(a)} studies")
PY
