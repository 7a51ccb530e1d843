#!/usr/bin/env bash
# Installs every system package mnistctl needs to build, test and run on Debian 12.
# Idempotent: packages already present are left alone. Runs as root, or through sudo.
#
#   scripts/setup.sh               # everything: build, run and the whole test suite (CI)
#   scripts/setup.sh --build-only  # what building and running mnistctl needs (scripts/quickstart.sh):
#                                  # not the test suite's browser, fuzzing compiler and Node.js
set -euo pipefail

build_only=0
case ${1:-} in
  "") ;;
  --build-only) build_only=1 ;;
  *) echo "setup: unknown option '$1' (expected --build-only or nothing)" >&2; exit 2 ;;
esac

PKGS=(
  build-essential cmake ninja-build pkg-config git python3
  libcli11-dev libyaml-cpp-dev libfmt-dev
  libdnnl-dev ocl-icd-opencl-dev
  catch2 zlib1g-dev libcurl4-openssl-dev libpng-dev
  dataset-fashion-mnist
  libssl-dev
  libonnx-dev libprotobuf-dev
  nlohmann-json3-dev                   # mnistctl report: reads metrics.jsonl
  libopenmpi-dev openmpi-bin            # mpirun -np N mnistctl train
)
TEST_PKGS=(
  chromium fonts-dejavu-core            # the report's browser test (headless screenshot)
  clang-14 libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer with ASan/UBSan
)

if [ "$build_only" -eq 0 ]; then
  PKGS+=("${TEST_PKGS[@]}")
  # Node.js and npm run the export tests' ONNX Runtime check (onnxruntime-node, from the npm
  # registry). A node already on the PATH, from whatever source, is used as it is.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    PKGS+=(nodejs npm)
  fi
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
