#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in ./build-fuzz (override with FUZZ_BUILD_DIR) and runs one of them.
#
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer arguments]
#   scripts/fuzz.sh fuzz_contract 120
#   scripts/fuzz.sh fuzz_pixel_decode 600 -max_len=65536
#   scripts/fuzz.sh fuzz_dicom_index 0 build-fuzz/artifacts/fuzz_dicom_index/crash-...   # replay one input
#
# TARGET: fuzz_dicom_index, fuzz_pixel_decode, fuzz_contract or fuzz_csv (fuzz/README.md). The corpus grows in
# build-fuzz/corpus/TARGET (kept between runs); seeds come from fuzz/make-seeds.sh into build-fuzz/seeds
# (made once; delete the folder to remake it); crashes, timeouts and OOMs go to build-fuzz/artifacts/TARGET/.
# Exit status: 0 when nothing was found, 1 when the target crashed (or libFuzzer failed otherwise).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
JOBS="${JOBS:-2}"
TARGETS=(fuzz_dicom_index fuzz_pixel_decode fuzz_contract fuzz_csv)

if (($# < 2)) || [[ ! " ${TARGETS[*]} " == *" $1 "* ]] || [[ ! "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 TARGET SECONDS [libFuzzer args]   (TARGET: ${TARGETS[*]})" >&2
  exit 2
fi
target="$1" seconds="$2"
shift 2

# The core builds without LibTorch (the plugin is loaded at run time and no fuzz target needs it), and the
# tests are not needed here: only cspine_core and the fuzz targets are compiled.
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  if ! command -v "${CXX:-clang++}" >/dev/null; then
    echo "fuzz.sh: ${CXX:-clang++} not found: apt-get install clang libclang-rt-14-dev (libFuzzer)" >&2
    exit 2
  fi
  generator=()
  if command -v ninja >/dev/null; then generator=(-G Ninja); fi
  CC="${CC:-clang}" CXX="${CXX:-clang++}" cmake -S "$ROOT" -B "$BUILD_DIR" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCSPINE_FUZZ=ON -DCSPINE_WITH_TORCH=OFF -DCSPINE_BUILD_TESTS=OFF
fi
t0=$(date +%s)
cmake --build "$BUILD_DIR" -j "$JOBS" --target "$target"
echo "fuzz.sh: $target built in $(( $(date +%s) - t0 )) s"

seeds="$BUILD_DIR/seeds"
if [[ ! -d "$seeds/$target" ]]; then
  # Synthetic seeds need a cspine: $CSPINE_BINARY, build/cspine, or else this build's own (instrumented) one.
  if [[ -z "${CSPINE_BINARY:-}" && ! -x "$ROOT/build/cspine" ]]; then
    cmake --build "$BUILD_DIR" -j "$JOBS" --target cspine
    export CSPINE_BINARY="$BUILD_DIR/cspine"
  fi
  "$ROOT/fuzz/make-seeds.sh" "$seeds"
fi

corpus="$BUILD_DIR/corpus/$target"
artifacts="$BUILD_DIR/artifacts/$target"
mkdir -p "$corpus" "$artifacts" "$BUILD_DIR/logs"
log="$BUILD_DIR/logs/$target-$(date +%Y%m%d-%H%M%S).log"
stamp="$BUILD_DIR/logs/.start-$$"
touch "$stamp"

# Leak checking stays on (a leak is a finding too; fuzz/lsan.supp lists the third-party ones); UB stops the run.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0}"
inputs=("$corpus" "$seeds/$target")
case "$target" in
  fuzz_dicom_index | fuzz_pixel_decode) dict="$ROOT/fuzz/dicts/fuzz_dicom.dict" ;;
  *) dict="$ROOT/fuzz/dicts/$target.dict" ;;
esac
inputs+=(-dict="$dict")
# A file given as an argument replays that input instead of fuzzing.
for a in "$@"; do if [[ -f "$a" ]]; then inputs=(); fi; done
started=$(date +%s)
set +e
"$BUILD_DIR/fuzz/$target" "${inputs[@]}" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=25 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" >"$log" 2>&1 &
pid=$!
# Progress without libFuzzer's line per new input.
tail -n +1 -f "$log" --pid "$pid" | grep --line-buffered -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE) '
wait "$pid"
rc=$?
set -e

elapsed=$(( $(date +%s) - started ))
# Executions: libFuzzer's final stats, or (with -fork, where the parent prints none) its last status line.
execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
if [[ -z "$execs" ]]; then execs=$(grep -o -E '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true); fi
rate="?"
if [[ -n "$execs" ]] && ((elapsed > 0)); then rate=$((execs / elapsed)); fi
mapfile -t found < <(find "$artifacts" -type f -newer "$stamp" | sort)
rm -f "$stamp"
echo "fuzz.sh: $target: exit $rc, ${execs:-?} executions in ${elapsed} s (${rate} exec/s), corpus $(find "$corpus" -type f | wc -l) files, log $log"
if ((${#found[@]} > 0)); then
  echo "fuzz.sh: $target CRASHED: new artifact(s):"
  printf '  %s\n' "${found[@]}"
  # Each one replayed once, for its first lines of report (the -fork children's logs are not kept).
  for f in "${found[@]}"; do
    echo "== $f"
    report="$(ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" "$BUILD_DIR/fuzz/$target" "$f" 2>&1 || true)"
    grep -E -m3 'ERROR: |runtime error: |^terminate called|what\(\):' <<<"$report" | sed 's/^/   /' || true
    # The first frame that is not the sanitizer, libFuzzer, libc or the C++ runtime, then the project's own.
    frames="$(grep -E '^ +#[0-9]+ ' <<<"$report" |
      grep -v -E 'sanitizer|fuzzer::|libc\.so|abort|raise|pthread_kill|libstdc\+\+|__cxa|std::terminate|asan_|__interceptor' |
      sed -E 's/ \(BuildId: [0-9a-f]+\)//; s/^ +//' || true)"
    head -1 <<<"$frames" | cut -c1-160 | sed 's/^/     /'
    grep -E " $ROOT/(src|fuzz|include)/" <<<"$frames" | sed -E 's/^(#[0-9]+) 0x[0-9a-f]+ in (.{0,90}).* ([^ ]+:[0-9]+:[0-9]+)$/\1 \3  \2/' |
      head -4 | sed 's/^/     /' || true
  done
  exit 1
fi
if ((rc != 0)); then
  echo "fuzz.sh: $target: libFuzzer exited with status $rc (see the log)"
  exit 1
fi
echo "fuzz.sh: $target: no crash"
