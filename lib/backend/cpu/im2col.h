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

}  // namespace mnistctl::cpu
