#!/usr/bin/env bash
# Builds the libFuzzer targets of test/fuzz/ (clang-14, AddressSanitizer + UBSan, CUDA off) in
# build-fuzz/ and runs each for SECONDS (default 60), one per core at a time. docs/reliability.md describes them.
#   scripts/fuzz.sh              # every target, 60 s each
#   scripts/fuzz.sh 600 config   # 600 s, only the named targets
# New coverage goes to build-fuzz/corpus/<target>/ (not the repository); a finding is saved
# in build-fuzz/findings/<target>/ and makes the script exit 1. To keep it as a regression
# input, copy the file into test/fuzz/corpus/<target>/ (ctest replays that folder).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(idx idx_gzip config checkpoint image)
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
# An input may make the code under test allocate at most this much at once / in all; more
# is reported as a finding (libFuzzer's "out-of-memory"), like a crash.
MALLOC_LIMIT_MB=${FUZZ_MALLOC_LIMIT_MB:-512}
RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-2048}

if ! command -v clang++-14 >/dev/null || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a \
    >/dev/null 2>&1; then
  bash scripts/setup.sh
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
SAN="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_COMPILER=clang++-14 \
  "${launcher[@]}" -DCMAKE_CXX_FLAGS="$SAN -O1 -g" -DMNISTCTL_ENABLE_CUDA=OFF \
  -DMNISTCTL_FUZZ=ON -DMNISTCTL_TEST_AREAS=fuzz >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${TARGETS[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The targets run side by side, as many at a time as there are cores (each is one process on
# one core), so that CI's wall time does not grow with their number; their reports follow
# in the order given.
run_one() {
  local t=$1 log="$BUILD_DIR/findings/$1.log"
  if "$BUILD_DIR/bin/fuzz_$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb="$RSS_LIMIT_MB" \
      -malloc_limit_mb="$MALLOC_LIMIT_MB" -print_final_stats=1 -artifact_prefix="$BUILD_DIR/findings/$t/" \
      "$BUILD_DIR/corpus/$t" "test/fuzz/corpus/$t" >"$log" 2>&1; then
    echo ok >"$BUILD_DIR/findings/$t.status"
  else
    echo finding >"$BUILD_DIR/findings/$t.status"
  fi
}
parallel=$(nproc)
for t in "${TARGETS[@]}"; do
  mkdir -p "$BUILD_DIR/corpus/$t" "$BUILD_DIR/findings/$t"
  rm -f "$BUILD_DIR/findings/$t.status"
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  echo "fuzz: $t for ${SECS}s"
  run_one "$t" &
done
wait
failed=()
for t in "${TARGETS[@]}"; do
  log="$BUILD_DIR/findings/$t.log"
  if [ "$(cat "$BUILD_DIR/findings/$t.status" 2>/dev/null)" = ok ]; then
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ *DONE" "$log" | sed "s/^/fuzz: $t: /"
  else
    tail -n 40 "$log"
    echo "fuzz: $t: FINDING (input in $BUILD_DIR/findings/$t/, log $log)"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, ${SECS}s each, no finding"
