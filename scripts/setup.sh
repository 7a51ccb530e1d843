#!/usr/bin/env bash
# Installs every system package mnistctl needs to build, test and run on Debian 12.
# Idempotent: packages already present are left alone. Runs as root, or through sudo.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git python3
  libcli11-dev libyaml-cpp-dev libfmt-dev
  libdnnl-dev ocl-icd-opencl-dev
  catch2 zlib1g-dev libcurl4-openssl-dev libpng-dev
  dataset-fashion-mnist
  libssl-dev
  libonnx-dev libprotobuf-dev
)

# Node.js and npm run the export tests' ONNX Runtime check (onnxruntime-node, from the npm
# registry). A node already on the PATH, from whatever source, is used as it is.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PKGS+=(nodejs npm)
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
