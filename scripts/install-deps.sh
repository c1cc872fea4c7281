#!/usr/bin/env bash
# Installs everything cspine needs to build, test and run, from Debian's packages only. Idempotent: packages
# already present are not touched, and apt-get runs only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev                          # LibTorch (CPU) for the model backend plugin
  libdcmtk-dev dcmtk                    # DICOM reading, codecs (JPEG, JPEG-LS, RLE), dcmdump/dcmcjpeg
  libgdcm-dev libgdcm-tools             # JPEG 2000 decoding; the tools silence ITK's GDCM config warning
  libinsighttoolkit5-dev                # NIfTI I/O, resampling, connected components
  libcli11-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev
  libopencv-dev                         # OpenCV's resize for models trained with it (contract input.resize opencv_*)
  dcm2niix                              # reference converter used by the tests and the loader benchmark
  python3 python3-numpy python3-pytest  # Python side (training/export scripts, pytest suites)
  python3-torch python3-torchvision     # training and TorchScript export (scripts/cspine_models), CPU
  python3-sklearn python3-scipy         # metrics cross-check (tests/python); scipy.ndimage in the Python peer
  python3-pydicom python3-gdcm python3-nibabel  # independent readers of what synth writes (tests/python)
  python3-opencv python3-pandas python3-tqdm python3-joblib python3-pil python3-six  # the RSNA 2022 notebook (oracle)
  slurmctld slurmd slurm-client munge   # a real single-node Slurm for the cluster tests (tests/python/test_cluster.py)
  dicom3tools orthanc                   # --dicom-out tests: dciodvfy validates the objects; Orthanc is the test PACS
)
if [[ "${CSPINE_BENCH_DEPS:-0}" == "1" ]]; then PACKAGES+=(hyperfine time); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: missing packages (${missing[*]}) and not root; install them or rerun as root" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
