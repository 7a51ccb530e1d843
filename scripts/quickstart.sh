#!/usr/bin/env bash
# From a fresh Debian 12 machine to a trained LeNet: installs the dependencies, builds
# mnistctl (Release), fetches MNIST (verified by SHA-256), trains the MXNet tutorial's LeNet
# on the CPU for 10 epochs and prints its test accuracy.
#   scripts/quickstart.sh
#   MNISTCTL_MIRROR=/path/to/mnist-files scripts/quickstart.sh    # offline: a folder or URL
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j"$(nproc)" --target mnistctl
MNISTCTL="$BUILD_DIR/bin/mnistctl"

"$MNISTCTL" fetch --dataset mnist
"$MNISTCTL" train --config configs/lenet.yaml --ctx cpu --out runs/lenet
"$MNISTCTL" eval --model runs/lenet --min-accuracy 0.98
