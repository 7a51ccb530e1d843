// Max and average pooling on plain NCHW for the CPU backend, as OpenMP loops.
//
// oneDNN's pooling on plain layouts was the slowest non-conv op of a LeNet step (its fast
// kernels want blocked layouts, and the Backend boundary is NCHW), so pooling is done
// here: one image plane per iteration, planes split statically over the threads, and a
// fast path for the common 2x2 window with stride 2 and no padding. Results match the
// reference backend exactly for max pooling (same first-maximum rule, same summation order
// where windows overlap) and to rounding for average pooling.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace mnistctl::cpu {

// Bytes of the workspace pool_forward fills for max pooling: one int32 per output, the
// index of the window's first maximum within its input plane. 0 for average pooling.
size_t pool_workspace_bytes(const PoolDesc& d);

// y = pool(x). For max pooling `ws` (pool_workspace_bytes) receives the argmax indices.
void pool_forward(const PoolDesc& d, const float* x, float* y, int32_t* ws, int threads);

// dx = the gradient of pool(x) given dy: max pooling routes each dy to its window's argmax
// (from ws); average pooling spreads dy / (kh*kw) over the window. Overwrites dx.
void pool_backward(const PoolDesc& d, const float* dy, const int32_t* ws, float* dx, int threads);

}  // namespace mnistctl::cpu
