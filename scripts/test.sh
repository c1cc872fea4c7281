#!/usr/bin/env bash
# One command for a newcomer and for CI: install dependencies, build, run every test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
start=$(date +%s)

"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" -DCSPINE_BUILD_TESTS=ON

SAMPLES="${CSPINE_SAMPLES_DIR:-$ROOT/../shared/dicom-samples}"
if [[ ! -d "$SAMPLES" ]]; then
  echo "test.sh: WARNING: real DICOM samples not found at $SAMPLES; the tests that need them are skipped" >&2
fi

echo "== ctest"
(cd "$BUILD_DIR" && ctest -j "${CTEST_JOBS:-2}" --output-on-failure --timeout 600)

# Python suites: the evaluate cross-check with scikit-learn, synth read by pydicom/nibabel, the model package
# (shapes, contract, export, a few training steps) and the train/serve preprocessing parity with the binary.
if compgen -G "$ROOT/tests/python/test_*.py" >/dev/null; then
  echo "== pytest"
  export CSPINE_BINARY="$BUILD_DIR/cspine"
  /usr/bin/python3 -m pytest -q "$ROOT/tests/python"
fi
echo "test.sh: all suites passed in $(( $(date +%s) - start )) s"
