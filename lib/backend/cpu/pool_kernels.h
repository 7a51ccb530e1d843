// Max and average pooling on NCHW or channels-last (nhwc) tensors for the CPU backend, as
// OpenMP loops.
//
// oneDNN's pooling on plain layouts was the slowest non-conv op of a LeNet step (its fast
// kernels want blocked layouts), so pooling is done here: on NCHW one image plane per
// iteration, with a fast path for the common 2x2 window with stride 2 and no padding; on
// nhwc one image per iteration with the channels innermost (as AVX-512 lanes for the
// forward and backward of a 2x2, stride-2 max pooling from nhwc to nhwc, where the CPU has
// AVX-512F).
// Results match the reference backend exactly for max pooling (same first-maximum rule,
// same summation order where windows overlap) and to rounding for average pooling.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace mnistctl::cpu {

// Bytes of the workspace pool_forward fills for max pooling: one int32 per output, the
// index (iy * w + ix) of the window's first maximum within its input plane. 0 for average pooling.
size_t pool_workspace_bytes(const PoolDesc& d);

// y = pool(x), x in layout `in` and y in `out` (an nhwc `out` needs an nhwc `in`). For max
// pooling `ws` (pool_workspace_bytes) receives the argmax indices, laid out as y.
void pool_forward(const PoolDesc& d, Layout in, Layout out, const float* x, float* y, int32_t* ws,
                  int threads);

// dx (layout `in`) = the gradient of pool(x) given dy (layout `out`): max pooling routes each
// dy to its window's argmax (from ws); average pooling spreads dy / (kh*kw) over the window.
// Overwrites dx.
void pool_backward(const PoolDesc& d, Layout in, Layout out, const float* dy, const int32_t* ws, float* dx,
                   int threads);

}  // namespace mnistctl::cpu
