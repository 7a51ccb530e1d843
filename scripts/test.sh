#!/usr/bin/env bash
# Installs the dependencies, builds mnistctl (Release) and runs the whole test suite with ctest;
# then builds without the CUDA backend and runs its GPU-context tests (where CUDA was on).
#   scripts/test.sh                 # build/ beside the sources
#   BUILD_DIR=/tmp/b scripts/test.sh
# Tests that need the real MNIST files find them in ../shared/datasets/mnist (or
# $MNISTCTL_TEST_MNIST) and are skipped with a message where they are absent; GPU tests are
# skipped with a message where no GPU is present.
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

# The build without ONNX export (a machine without libonnx-dev): `mnistctl export` refuses
# with one line and exit 2.
if grep -q "^MNISTCTL_ENABLE_ONNX:BOOL=ON" "$BUILD_DIR/CMakeCache.txt"; then
  cmake -S . -B "$BUILD_DIR-noonnx" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMNISTCTL_ENABLE_ONNX=OFF \
    -DMNISTCTL_ENABLE_CUDA=OFF -DMNISTCTL_TEST_AREAS=export
  cmake --build "$BUILD_DIR-noonnx" -j"$JOBS" --target mnistctl test_export_off
  ctest --test-dir "$BUILD_DIR-noonnx" --output-on-failure -j"$JOBS"
fi
