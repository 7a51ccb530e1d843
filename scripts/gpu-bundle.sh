#!/usr/bin/env bash
# Makes .gpu-bundle/: everything scripts/gpu-check.sh needs on a GPU machine that has CUDA,
# cuDNN and PyTorch but none of this project's other libraries and no network.
#
#   bash scripts/gpu-bundle.sh        (here, on the build machine; prints the bundle's size)
#
# Contents: bin/ (mnistctl, libmnistctl_cuda.so, test_backend_ops, test_gpu), lib/ (the
# non-CUDA shared libraries they need beyond a base glibc system, found with ldd), data/mnist
# (the four MNIST .gz files), configs/ and scripts/. Files over 1 MB are xz-compressed
# (libdnnl alone is 40 MB); gpu-check.sh unpacks them. CUDA, cuBLAS and cuDNN are NOT
# bundled: the GPU machine's own (PyTorch's pip packages) are used, so the driver, the
# runtime and cuDNN match there.
#
# Environment: MNISTCTL_BUNDLE_BUILD (build folder, default build-gpu-bundle),
# MNISTCTL_TEST_MNIST (MNIST folder, default ../shared/datasets/mnist), JOBS (default 2).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${MNISTCTL_BUNDLE_BUILD:-build-gpu-bundle}
mnist=${MNISTCTL_TEST_MNIST:-$root/../shared/datasets/mnist}
out=$root/.gpu-bundle

for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -f "$mnist/$f" ] || { echo "gpu-bundle: $mnist/$f not found (set MNISTCTL_TEST_MNIST)" >&2; exit 2; }
done
command -v xz >/dev/null || { echo "gpu-bundle: xz not found (apt-get install xz-utils)" >&2; exit 2; }

echo "gpu-bundle: building Release with CUDA in $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMNISTCTL_ENABLE_CUDA=ON -DBUILD_TESTING=ON >/dev/null
cmake --build "$build" --target mnistctl mnistctl_cuda test_backend_ops test_gpu -j"${JOBS:-2}"

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/data/mnist"
bins=(mnistctl libmnistctl_cuda.so test_backend_ops test_gpu)
for b in "${bins[@]}"; do cp "$build/bin/$b" "$out/bin/"; done

# Shared libraries: everything ldd resolves, except the CUDA libraries (the GPU machine has
# its own) and glibc / the compiler runtime (every system has them, and mixing two glibcs
# in one process does not work).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libutil\.so|libanl|libnsl|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libcudnn|libnvrtc|libnvJitLink)'
for b in "${bins[@]}"; do
  ldd "$build/bin/$b" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r name path; do
  if [[ "$name" =~ $skip ]]; then continue; fi
  cp -L "$path" "$out/lib/$name"
done

cp "$mnist"/*-ubyte.gz "$out/data/mnist/"
cp -r configs "$out/configs"
mkdir -p "$out/scripts"
cp scripts/gpu-check.sh scripts/bench_torch.py "$out/scripts/"

# Compress what is big; gpu-check.sh unpacks with xz or, where xz is missing, Python's lzma.
find "$out/bin" "$out/lib" -type f -size +1M -print0 | xargs -0 -r xz -T0 -6

echo "gpu-bundle: contents"
(cd "$out" && find . -type f -printf '%8k KB  %p\n' | sort -k3)
echo "gpu-bundle: $(du -sh "$out" | cut -f1) in $out ($(du -sb "$out" | cut -f1) bytes)"
