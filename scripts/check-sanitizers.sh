#!/usr/bin/env bash
# Builds cspine_core, cspine, the LibTorch plugin and the C++ tests with AddressSanitizer and
# UndefinedBehaviorSanitizer (clang, -O1 -g) in ./build-asan (override with BUILD_DIR) and runs ctest there.
#
#   scripts/check-sanitizers.sh                 # everything: on the 2-core VM about 10-13 min to build (from
#                                               # scratch) and 3.5-9 min of ctest, depending on other load
#   scripts/check-sanitizers.sh -R 'Codecs|Hostile|fuzz_replay'    # extra arguments go to ctest
#   SKIP_TESTS='...' scripts/check-sanitizers.sh                   # replaces the list of tests left out
#
# Needs clang and its sanitizer runtimes (Debian: clang-14, libclang-rt-14-dev); only clang 14 was tried.
#
# Any ASan report (heap overflow, use after free, leak), any undefined behaviour (the build uses
# -fno-sanitize-recover=undefined) or any test failure fails the run. Leaks inside third-party libraries that
# cspine cannot free are suppressed by fuzz/lsan.supp; the tests left out, and why, are in SKIP_TESTS below.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-asan}"
JOBS="${JOBS:-2}"
start=$(date +%s)

# Tests that cannot pass under ASan for reasons other than a bug (regular expression for ctest -E):
#  - PredictCli.ThousandSliceFullSizeStudyStaysUnderFourGigabytes: measures cspine's peak RSS against a budget;
#    ASan's shadow memory and quarantine multiply RSS, so the number means nothing here (and it is the slowest
#    test by far).
#  - SynthCli.InterruptKeepsFinishedStudiesAndRemovesTheOneInProgress: sends SIGINT 1.5 s after start and needs
#    one 128 x 128 x 96 study finished by then; instrumented synth on a loaded 2-core VM may not get there.
SKIP_TESTS="${SKIP_TESTS:-StaysUnderFourGigabytes|InterruptKeepsFinishedStudies}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:abort_on_error=0}"
# use_tls=0: see fuzz/lsan.supp (clang 14 LSan vs glibc 2.36 dynamic TLS).
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0:use_tls=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  if ! command -v "${CXX:-clang++}" >/dev/null; then
    echo "check-sanitizers: ${CXX:-clang++} not found: apt-get install clang libclang-rt-14-dev, or set CC/CXX" >&2
    exit 2
  fi
  generator=()
  if command -v ninja >/dev/null; then generator=(-G Ninja); fi
  CC="${CC:-clang}" CXX="${CXX:-clang++}" cmake -S "$ROOT" -B "$BUILD_DIR" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" -DCSPINE_SANITIZE=address,undefined -DCSPINE_BUILD_TESTS=ON
fi
# Only what ctest runs (not the benchmark helpers).
targets=(cspine unit_tests integration_tests e2e_tests
         replay_fuzz_dicom_index replay_fuzz_pixel_decode replay_fuzz_contract replay_fuzz_csv)
if grep -q '^CSPINE_WITH_TORCH:BOOL=ON' "$BUILD_DIR/CMakeCache.txt"; then targets+=(cspine_torch); fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}"
built=$(date +%s)
echo "check-sanitizers: built in $((built - start)) s"

(cd "$BUILD_DIR" && ctest -j "${CTEST_JOBS:-2}" --output-on-failure --timeout 1200 -E "$SKIP_TESTS" "$@")
echo "check-sanitizers: ctest passed in $(( $(date +%s) - built )) s (skipped: $SKIP_TESTS); total $(( $(date +%s) - start )) s"
