#!/usr/bin/env bash
# Test setup for the export tests: installs onnxruntime-node (CPU only: its postinstall
# download of the CUDA/TensorRT providers is skipped with ONNXRUNTIME_NODE_INSTALL=skip) from
# the npm registry into the build tree, once; later runs find it there. A failure here fails
# the export tests (it is not a hardware skip).
#   install_ort.sh <dest folder> <version>
set -euo pipefail
dest=$1
version=$2
pkg="$dest/node_modules/onnxruntime-node/package.json"
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "install_ort: '$tool' not found (scripts/setup.sh installs nodejs and npm)" >&2; exit 1; }
done
if [ -f "$pkg" ] && [ "$(node -p "require('$pkg').version")" = "$version" ]; then
  echo "install_ort: onnxruntime-node $version already in $dest"
else
  mkdir -p "$dest"
  echo "install_ort: installing onnxruntime-node $version into $dest (CPU only)"
  ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$dest" --no-save --no-audit --no-fund --loglevel=error \
    "onnxruntime-node@$version"
fi
# Prove that the native binding loads on this machine.
NODE_PATH="$dest/node_modules" node -e "const o = require('onnxruntime-node'); console.log('install_ort: onnxruntime-node', require('onnxruntime-node/package.json').version, 'loads, backends ok:', typeof o.InferenceSession.create === 'function')"
