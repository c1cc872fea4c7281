#!/usr/bin/env bash
# The predict benchmark on a GPU machine that has PyTorch with CUDA but no Debian packages and no network:
# bench/pipeline.sh on CUDA (fp32 and --fp16) against the Python peer on the same GPU.
#   scripts/gpu-bench.sh prepare   # here: build, bundle cspine, cspine_model_floor and their Debian libraries,
#                                  # and the peer's pure-Python readers (pydicom, nibabel) into .gpu/
#   scripts/gpu-bench.sh run [studies=8]   # there, carrying .gpu/: build the LibTorch backend against that
#                                  # machine's PyTorch, then the benchmark, one round each (BENCH_REPEAT);
#                                  # planned to fit 8 minutes on an H100 (not yet run on one)
#
# How cspine gets onto that machine: only the model backend (libcspine_torch.so, C ABI) is built there, against
# the LibTorch inside the pip PyTorch (torch.utils.cmake_prefix_path); the executables built here with Debian's
# DCMTK, ITK and GDCM travel with their libraries, unpacked from this machine's packages. Building all of cspine
# there would need those libraries' development packages relocated by hand for no gain: the plugin boundary
# exists so that a Debian-built cspine can run a CUDA LibTorch (checked by scripts/gpu-smoke.sh on an H100).
# Studies are uncompressed there: the peer's pydicom has no JPEG lossless decoder without GDCM's Python module,
# which is compiled for Debian's Python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BUNDLE="$ROOT/.gpu"

case "${1:-}" in
prepare)
  "$ROOT/scripts/install-deps.sh" >/dev/null
  "$ROOT/scripts/build.sh" >/dev/null
  stage=/tmp/cspine-bench-bundle
  rm -rf "$stage" && mkdir -p "$BUNDLE" "$stage/bin" "$stage/lib" "$stage/share" "$stage/py"
  cp "$BUILD_DIR/cspine" "$BUILD_DIR/cspine_model_floor" "$stage/bin/"
  # Every library the executables need except the C and C++ runtimes, which the other machine has (newer).
  for exe in "$stage"/bin/*; do ldd "$exe"; done | awk '/=>/ {print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' |
    while read -r lib; do cp -L "$lib" "$stage/lib/"; done
  cp /usr/share/libdcmtk17/dicom.dic /usr/share/libdcmtk17/private.dic "$stage/share/"
  # The peer's DICOM and NIfTI readers: pure Python, taken from this machine's Debian packages.
  (cd /tmp && rm -f python3-pydicom_*.deb python3-nibabel_*.deb python3-packaging_*.deb &&
    apt-get download python3-pydicom python3-nibabel python3-packaging >/dev/null &&
    for d in python3-pydicom_*.deb python3-nibabel_*.deb python3-packaging_*.deb; do dpkg -x "$d" "$stage/py"; done)
  tar -C "$stage" -cJf "$BUNDLE/bench-runtime.tar.xz" bin lib share py
  # What can be checked without a GPU: the bundle runs here from its own folder, on the CPU.
  check=/tmp/cspine-bench-check && rm -rf "$check" && mkdir -p "$check" && tar -C "$check" -xJf "$BUNDLE/bench-runtime.tar.xz"
  LD_LIBRARY_PATH="$check/lib" DCMDICTPATH="$check/share/dicom.dic" "$check/bin/cspine" --version
  PYTHONPATH="$check/py/usr/lib/python3/dist-packages" /usr/bin/python3 -c 'import pydicom, nibabel; print("peer readers", pydicom.__version__, nibabel.__version__)'
  echo "gpu-bench: bundle $(du -h "$BUNDLE/bench-runtime.tar.xz" | cut -f1) in $BUNDLE (carry .gpu to the GPU machine)"
  ;;
run)
  # GPU_BENCH_DEVICE=cpu, PY=/usr/bin/python3 and CSPINE_TORCH_PREFIX=/usr make a dry run on the CPU machine.
  studies="${2:-8}"
  device="${GPU_BENCH_DEVICE:-cuda}"
  py="${PY:-$(command -v python3)}"
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
  echo "== the backend plugin against this PyTorch's LibTorch"
  prefix="${CSPINE_TORCH_PREFIX:-$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')}"
  cmake -S "$ROOT" -B /tmp/cspine-backend -G Ninja -DCSPINE_BACKEND_ONLY=ON -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release >/tmp/cspine-backend.log 2>&1 || { tail -30 /tmp/cspine-backend.log; exit 1; }
  ninja -C /tmp/cspine-backend >/dev/null
  rt=/tmp/cspine-bench-rt && rm -rf "$rt" && mkdir -p "$rt" && tar -C "$rt" -xJf "$BUNDLE/bench-runtime.tar.xz"
  # Wrappers: the carried libraries are seen by cspine only, never by the Python peer's PyTorch.
  for exe in cspine cspine_model_floor; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s/lib exec %s/bin/%s "$@"\n' "$rt" "$rt" "$exe" > "$rt/$exe.sh"
    chmod +x "$rt/$exe.sh"
  done
  export CSPINE_TORCH_BACKEND=/tmp/cspine-backend/libcspine_torch.so CSPINE_MODELS_DIR="$ROOT/models"
  export DCMDICTPATH="$rt/share/dicom.dic:$rt/share/private.dic"
  export CSPINE="$rt/cspine.sh" CSPINE_MODEL_FLOOR="$rt/cspine_model_floor.sh" PY="$py"
  export PYTHONPATH="$rt/py/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}"
  export BENCH_NO_SETUP=1 BENCH_SYNTAXES=explicit BENCH_DIR=/tmp/cspine-bench BENCH_REPEAT="${BENCH_REPEAT:-1}"
  "$CSPINE" info
  threads=$(nproc)
  echo "== $device, fp32"
  "$ROOT/bench/pipeline.sh" "$studies" "$threads" --device "$device"
  if [[ $device == cuda* ]]; then
    echo "== $device, fp16"
    "$ROOT/bench/pipeline.sh" "$studies" "$threads" --device "$device" --fp16
  fi
  echo "gpu-bench: done"
  ;;
*)
  echo "usage: scripts/gpu-bench.sh prepare | run [studies]" >&2
  exit 2
  ;;
esac
