// Launch geometry shared by the backend's elementwise kernels.
//
// Every kernel here is a grid-stride loop over int64 indices: one launch shape fits any
// size (no 2^31 limit, no huge grids), 256 threads per block is a good default for
// memory-bound work on Hopper, and capping the grid keeps launches cheap for big tensors
// while small ones (a batch of 100 x 10 logits) get just the blocks they need.
#pragma once

#include <cstdint>

namespace mnistctl::cuda {

constexpr int kThreads = 256;

// for (int64_t i = first index of this thread; i < n; i += all threads of the grid)
// (for .cu files only: it uses the kernel built-ins).
#define MNISTCTL_GRID_STRIDE(i, n)                                                     \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

inline unsigned grid_for(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > 8192) blocks = 8192;  // 2M threads in flight: more than enough to fill an H100
  return static_cast<unsigned>(blocks);
}

}  // namespace mnistctl::cuda
