// The two backward directions of a multi-channel FP32 convolution on nhwc activations
// (LeNet's conv2) as AVX-512 loops, without a column matrix.
//
// With nhwc activations and no column padding, the inputs one output pixel's window reads
// in kernel row r are one contiguous span of kw*c floats: x[ih][ow*sw .. ow*sw + kw)[0:c],
// ih = oh*sh - ph + r. With the weights as ohwi, the span's weights W[o][r][0:kw][0:c] are
// contiguous too. So both directions are short sums of whole spans:
//   backward-data:    dx_span(p, r) += sum over o of dy[p][o] * W[o][r][span],
//   backward-weights: dW[o][r][span] += sum over p of dy[p][o] * x_span(p, r).
// A span of up to 7 vectors stays in registers: backward-data holds the spans of one pixel
// in a few images (the dy values broadcast, the weights loaded once per o), backward-weights
// a few filters' spans over all the pixels of a group of images (the x span loaded once per
// pixel). This is Caffe's gemm convolution without its column matrix: the lowered form
// (im2col.h and a matmul) writes and rereads a column matrix kh*kw times dy's size, and in
// the step those matrices no longer sit in cache (docs/performance.md, section 6).
//
// Images go to threads in contiguous ranges (a static split). Backward-data sums each
// output in a fixed order whatever the thread count; backward-weights sums the threads'
// partial dW in thread order, so a fixed thread count (the count OpenMP gives) gives
// bit-identical results.
#pragma once

#include <cstddef>

#include "backend/backend.h"

namespace mnistctl::cpu {

// Whether these loops run `d` here: an x86 CPU with AVX-512F, two or more input channels,
// no column padding, a kernel that fits the (row-padded) input, and a span (kw*c) of 16 to
// 112 floats (1 to 7 vectors). The functions below throw RuntimeError otherwise.
bool span_conv_supported(const ConvDesc& d);

// Bytes of scratch the two functions need with `threads` threads. The scratch must be
// 64-byte aligned (the loops use aligned vector loads and stores on it).
size_t span_conv_scratch_bytes(const ConvDesc& d, int threads);

// dx (N, C, H, W) nhwc = the gradient of the input, overwritten; dy (N, K, OH, OW) nhwc,
// w KCRS (K, C, KH, KW).
void span_conv_backward_data(const ConvDesc& d, const float* dy, const float* w, float* dx, void* scratch,
                             int threads);

// dw (K, C, KH, KW) = the gradient of the weights, overwritten; db (K), when not null, too.
// x (N, C, H, W) nhwc, dy (N, K, OH, OW) nhwc.
void span_conv_backward_weights(const ConvDesc& d, const float* x, const float* dy, float* dw, float* db,
                                void* scratch, int threads);

}  // namespace mnistctl::cpu
