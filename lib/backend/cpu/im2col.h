// im2col and col2im on channels-last (nhwc) activations, for the CPU backend's convolution
// backward passes lowered to matmul (Caffe's "gemm convolution"; see dnnl_backend.cpp).
//
// The column matrix has one row per output pixel (image, oy, ox), R = n * oh * ow rows, and
// P = kh * kw * c columns in (ky, kx, channel) order: the order an "ohwi" weight buffer has,
// so that the (k, P) weight matrix is a plain row-major reorder of the layer's KCRS weights.
// In nhwc the channels of consecutive kx are consecutive in memory, so each (row, ky) is one
// contiguous run of the input (or of dx), whatever the stride; padding is zeros.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace mnistctl::cpu {

// cols (R x P, row-major) = the windows of x (n, h, w, c), elements of `elem` bytes (f32 or
// bf16: the copy does not look at the values).
void im2col_nhwc(const ConvDesc& d, const void* x, size_t elem, void* cols, int threads);

// dx (n, h, w, c) = the sum, over every window that covers each input element, of the
// matching dcols entry (R x P, f32): the adjoint of im2col_nhwc. Overwrites dx. Each image
// is summed by one thread in a fixed order, so results do not depend on the thread count.
void col2im_nhwc(const ConvDesc& d, const float* dcols, float* dx, int threads);

// colsT (P x R, row-major) = the transpose of the column matrix, from x in NCHW: one row per
// (channel, ky, kx), in that order (the order of KCRS weights), R = n * oh * ow columns in
// (image, oy, ox) order. Each row holds one input plane's values at one filter offset, so
// with stride 1 every (row, image, oy) is one contiguous run of x. The backward-weights
// matmul dW^T (P x k) = colsT dy then reads its long reduction dimension contiguously in
// both operands, which AMX's tile kernels want. Rows are split over the threads.
void im2col_t_nchw(const ConvDesc& d, const void* x, size_t elem, void* cols_t, int threads);

}  // namespace mnistctl::cpu
