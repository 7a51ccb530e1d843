#!/usr/bin/env bash
# Installs the dependencies, builds mnistctl (Release) and runs the whole test suite with ctest;
# then builds without the CUDA backend and runs its GPU-context tests (where CUDA was on).
#   scripts/test.sh                 # build/ beside the sources
#   BUILD_DIR=/tmp/b scripts/test.sh
# Then (docs/reliability.md) the whole suite again under AddressSanitizer + UBSan, and each
# fuzz target for FUZZ_SECONDS (default 60; 0 leaves fuzzing out).
# Tests that need the real MNIST files find them in ../shared/datasets/mnist (or
# $MNISTCTL_TEST_MNIST); where they are absent they are skipped with a message, or fail when
# CI is set. GPU tests are skipped (ctest's SKIP_RETURN_CODE) where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=$(nproc)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j"$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS"

# Where the main build has the CUDA backend, also prove the build without it (the binary for
# machines with no CUDA toolkit) and its GPU-context error paths.
if grep -q "^MNISTCTL_ENABLE_CUDA:BOOL=ON" "$BUILD_DIR/CMakeCache.txt"; then
  cmake -S . -B "$BUILD_DIR-nocuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMNISTCTL_ENABLE_CUDA=OFF \
    -DMNISTCTL_TEST_AREAS=gpu
  cmake --build "$BUILD_DIR-nocuda" -j"$JOBS" --target mnistctl test_gpu
  ctest --test-dir "$BUILD_DIR-nocuda" --output-on-failure -j"$JOBS"
fi

# Where the main build has the MPI component, also prove that a build without it refuses to
# be one of several mpirun ranks (test/dist's test for that build).
if grep -q "^MNISTCTL_ENABLE_MPI:BOOL=ON" "$BUILD_DIR/CMakeCache.txt"; then
  cmake -S . -B "$BUILD_DIR-nompi" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMNISTCTL_ENABLE_CUDA=OFF \
    -DMNISTCTL_ENABLE_MPI=OFF -DMNISTCTL_TEST_AREAS=dist
  cmake --build "$BUILD_DIR-nompi" -j"$JOBS" --target mnistctl test_dist
  ctest --test-dir "$BUILD_DIR-nompi" --output-on-failure -j"$JOBS"
fi

# The build without ONNX export (a machine without libonnx-dev): `mnistctl export` refuses
# with one line and exit 2.
if grep -q "^MNISTCTL_ENABLE_ONNX:BOOL=ON" "$BUILD_DIR/CMakeCache.txt"; then
  cmake -S . -B "$BUILD_DIR-noonnx" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMNISTCTL_ENABLE_ONNX=OFF \
    -DMNISTCTL_ENABLE_CUDA=OFF -DMNISTCTL_TEST_AREAS=export
  cmake --build "$BUILD_DIR-noonnx" -j"$JOBS" --target mnistctl test_export_off
  ctest --test-dir "$BUILD_DIR-noonnx" --output-on-failure -j"$JOBS"
fi

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer (gcc, CUDA off): any
# report ends the test process with an error, so it fails ctest and this script.
ASAN_DIR=${ASAN_BUILD_DIR:-$BUILD_DIR-asan}
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMNISTCTL_ENABLE_CUDA=OFF "${launcher[@]}" \
  -DCMAKE_CXX_FLAGS="$SAN_FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
cmake --build "$ASAN_DIR" -j"$JOBS"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --test-dir "$ASAN_DIR" --output-on-failure -j"$JOBS"

# Each libFuzzer target for FUZZ_SECONDS under ASan + UBSan (clang-14; scripts/fuzz.sh).
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$BUILD_DIR-fuzz} bash scripts/fuzz.sh "$FUZZ_SECONDS"
fi
