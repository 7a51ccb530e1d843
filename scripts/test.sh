#!/usr/bin/env bash
# Installs the dependencies, builds mnistctl (Release) and runs the whole test suite with ctest;
# then builds without the optional components (CUDA, MPI, ONNX) and runs their refusal tests.
#   scripts/test.sh                 # build/ beside the sources
#   BUILD_DIR=/tmp/b scripts/test.sh
# Then (docs/reliability.md) the whole suite again under AddressSanitizer + UBSan, and each
# fuzz target for FUZZ_SECONDS (default 60; 0 leaves fuzzing out).
# Tests that need the real MNIST files find them in ../shared/datasets/mnist (or
# $MNISTCTL_TEST_MNIST); where they are absent they are skipped with a message, or fail when
# CI is set. GPU tests are skipped (ctest's SKIP_RETURN_CODE) where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase prints its duration, so a slow CI run shows where its time went.
phase_start=$SECONDS
phase() { echo "test.sh: $1 took $((SECONDS - phase_start)) s (total $SECONDS s)"; phase_start=$SECONDS; }

bash scripts/setup.sh
phase "setup"
BUILD_DIR=${BUILD_DIR:-build}
JOBS=$(nproc)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j"$JOBS"
phase "Release build"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS"
phase "Release suite"

# Where the main build has optional components (CUDA backend, MPI, ONNX export), also prove
# the build without all of them, as on a machine without those libraries: `--ctx gpu`,
# several mpirun ranks and `mnistctl export` each refuse with one line and exit 2.
if grep -qE "^MNISTCTL_ENABLE_(CUDA|MPI|ONNX):BOOL=ON" "$BUILD_DIR/CMakeCache.txt"; then
  cmake -S . -B "$BUILD_DIR-minimal" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMNISTCTL_ENABLE_CUDA=OFF \
    -DMNISTCTL_ENABLE_MPI=OFF -DMNISTCTL_ENABLE_ONNX=OFF "-DMNISTCTL_TEST_AREAS=gpu;dist;export"
  cmake --build "$BUILD_DIR-minimal" -j"$JOBS" --target mnistctl test_gpu test_dist test_export_off
  ctest --test-dir "$BUILD_DIR-minimal" --output-on-failure -j"$JOBS"
  phase "build without CUDA, MPI and ONNX, and its tests"
fi

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer (gcc, CUDA off): any
# report ends the test process with an error, so it fails ctest and this script.
ASAN_DIR=${ASAN_BUILD_DIR:-$BUILD_DIR-asan}
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# MPI is off there: Open MPI's own plugins leak at exit under LeakSanitizer (reported from
# unloaded modules, so they cannot be suppressed by name); the dist tests run in the main build.
cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMNISTCTL_ENABLE_CUDA=OFF -DMNISTCTL_ENABLE_MPI=OFF "${launcher[@]}" \
  -DCMAKE_CXX_FLAGS="$SAN_FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
cmake --build "$ASAN_DIR" -j"$JOBS"
phase "sanitizer build"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:quarantine_size_mb=8} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --test-dir "$ASAN_DIR" --output-on-failure -j"$JOBS"
phase "sanitizer suite"

# Each libFuzzer target for FUZZ_SECONDS under ASan + UBSan (clang-14; scripts/fuzz.sh).
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$BUILD_DIR-fuzz} bash scripts/fuzz.sh "$FUZZ_SECONDS"
  phase "fuzzing"
fi
