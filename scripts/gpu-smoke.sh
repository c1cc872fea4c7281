#!/usr/bin/env bash
# Checks the CUDA path of the model backend on a GPU machine that has PyTorch with CUDA but no Debian packages:
# the backend plugin is built there against the LibTorch inside that PyTorch (CSPINE_BACKEND_ONLY), then loaded
# by a cspine executable built here with Debian's libraries, which travel as a bundle.
#   scripts/gpu-smoke.sh prepare   # here: build, bundle bin/cspine and its Debian libraries into .gpu/
#   scripts/gpu-smoke.sh run       # there (carry .gpu): build the plugin, load it, report CUDA, then run
#                                  # cspine predict on CPU, CUDA and CUDA fp16 and compare the probabilities,
#                                  # and the device-preprocessing unit tests on CUDA
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BUNDLE="$ROOT/.gpu"

case "${1:-}" in
prepare)
  "$ROOT/scripts/build.sh" >/dev/null
  rm -rf "$BUNDLE/runtime.tar.xz" /tmp/cspine-bundle && mkdir -p "$BUNDLE" /tmp/cspine-bundle/bin /tmp/cspine-bundle/lib
  # cspine, and the unit tests (their device-preprocessing tests run on CUDA there).
  cp "$BUILD_DIR/cspine" "$BUILD_DIR/tests/unit_tests" /tmp/cspine-bundle/bin/
  # Every library the executables need except the C and C++ runtimes, which the other machine has (newer).
  ldd "$BUILD_DIR/cspine" "$BUILD_DIR/tests/unit_tests" | awk '/=>/ {print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' |
    while read -r lib; do cp -L "$lib" /tmp/cspine-bundle/lib/; done
  # DCMTK's data dictionary is a run-time file (Debian: /usr/share/libdcmtk17): it travels too.
  mkdir -p /tmp/cspine-bundle/share && cp /usr/share/libdcmtk17/dicom.dic /usr/share/libdcmtk17/private.dic /tmp/cspine-bundle/share/
  tar -C /tmp/cspine-bundle -cJf "$BUNDLE/runtime.tar.xz" bin lib share
  echo "gpu-smoke: bundle $(du -h "$BUNDLE/runtime.tar.xz" | cut -f1) with $(ls /tmp/cspine-bundle/lib | wc -l) libraries"
  ;;
run)
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  grep PRETTY_NAME /etc/os-release || true
  (ldd --version || true) | head -1 || true
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
  echo "== build the backend plugin against this PyTorch's LibTorch"
  prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  cmake -S "$ROOT" -B /tmp/cspine-backend -G Ninja -DCSPINE_BACKEND_ONLY=ON -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release >/tmp/cspine-backend.log 2>&1 || { tail -30 /tmp/cspine-backend.log; exit 1; }
  grep -E "cspine:|CUDA" /tmp/cspine-backend.log | head -5 || true
  ninja -C /tmp/cspine-backend
  plugin=/tmp/cspine-backend/libcspine_torch.so
  echo "== load it through its C boundary from Python (no cspine libraries involved)"
  python3 - "$plugin" <<'PY'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.cspine_backend_info.restype = ctypes.c_char_p
print("abi", lib.cspine_backend_abi_version(), "|", lib.cspine_backend_info().decode())
PY
  echo "== load it from the cspine built with Debian's libraries"
  rm -rf /tmp/cspine-rt && mkdir -p /tmp/cspine-rt && tar -C /tmp/cspine-rt -xJf "$BUNDLE/runtime.tar.xz"
  export CSPINE_TORCH_BACKEND="$plugin" DCMDICTPATH=/tmp/cspine-rt/share/dicom.dic:/tmp/cspine-rt/share/private.dic
  LD_LIBRARY_PATH=/tmp/cspine-rt/lib /tmp/cspine-rt/bin/cspine info
  LD_LIBRARY_PATH=/tmp/cspine-rt/lib /tmp/cspine-rt/bin/cspine -q synth -o /tmp/cspine-synth -n 1 --matrix 128 --slices 64
  LD_LIBRARY_PATH=/tmp/cspine-rt/lib /tmp/cspine-rt/bin/cspine inspect /tmp/cspine-synth/train_images > /tmp/inspect.txt
  head -8 /tmp/inspect.txt
  echo "== cspine predict on the CPU, on CUDA and on CUDA in fp16 (default models), compared"
  LD_LIBRARY_PATH=/tmp/cspine-rt/lib /tmp/cspine-rt/bin/cspine -q synth -o /tmp/cspine-pred -n 4 --matrix 256 --seed 3 \
    --test-fraction 1
  for run in cpu cuda fp16; do
    args=(--device cuda); [[ $run == cpu ]] && args=(--device cpu); [[ $run == fp16 ]] && args=(--device cuda --fp16)
    start=$(date +%s.%N)
    LD_LIBRARY_PATH=/tmp/cspine-rt/lib /tmp/cspine-rt/bin/cspine -q predict /tmp/cspine-pred/test_images \
      -o "/tmp/pred-$run.csv" --wide-csv "/tmp/wide-$run.csv" --seg-model "$ROOT/models/seg.pt" \
      --cls-model "$ROOT/models/cls.pt" "${args[@]}"
    echo "$run: $(echo "$(date +%s.%N) - $start" | bc) s for 4 studies (model loading included)"
  done
  python3 - <<'PY'
import csv
def read(run):
    with open(f"/tmp/wide-{run}.csv") as f:
        return {r["StudyInstanceUID"]: [float(r[k]) for k in r if k != "StudyInstanceUID"] for r in csv.DictReader(f)}
cpu = read("cpu")
for run, tol in (("cuda", 1e-3), ("fp16", 2e-2)):
    other = read(run)
    worst = max(abs(a - b) for u in cpu for a, b in zip(cpu[u], other[u]))
    print(f"max |cpu - {run}| = {worst:.2e} (stated tolerance {tol})", "OK" if worst <= tol else "OVER")
PY
  echo "== device preprocessing on CUDA against the host rule (unit tests: crops, classifier, segmentation)"
  CSPINE_TEST_DEVICE=cuda CSPINE_SOURCE_DIR="$ROOT" LD_LIBRARY_PATH=/tmp/cspine-rt/lib \
    /tmp/cspine-rt/bin/unit_tests --gtest_filter='DevicePreprocess.*'
  echo "gpu-smoke: done"
  ;;
*)
  echo "usage: scripts/gpu-smoke.sh prepare|run" >&2
  exit 2
  ;;
esac
