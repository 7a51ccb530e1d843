#!/usr/bin/env bash
# Installs the dependencies, builds mnistctl (Release) and runs the whole test suite with ctest.
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
