// Convolution of a single-channel input (LeNet's conv1 on the image) for the CPU backend:
// the forward and the backward-weights direction as AVX-512 loops, with the output (or its
// gradient) channels-last.
//
// With one input channel a convolution's reduction per output is only kh*kw long (25 for
// LeNet), too short for oneDNN 2.6's kernels: its brgemm forward and its backward-weights
// kernel run such a layer far below the FMA peak, and lowering it to a matmul over im2col's
// column matrix costs more than it gains (docs/performance.md, section 6). Here the output
// channels are the vector lanes: a block of 8 output pixels of a row keeps its outputs (or
// its dy) in registers, and each tap is one broadcast input value and one FMA per vector
// of 16 channels. Channels past the last whole vector (LeNet's 20 = 16 + 4) share one
// vector among 16 / rest pixels (lane p*rest + c), fed by one permute of the input row,
// so that no lane computes padding. That is the block form. For 5x5 and 3x3 kernels at
// column stride 1 (LeNet's conv1) the tap form keeps instead all the taps of a vector of
// channels in registers: the weights in the forward, the partial dW in backward-weights,
// so that only the inputs (broadcast loads) and dy stream through; its shared vector puts
// channel c of pixel j at lane c*(16 / rest) + j, so a tap's input for its pixels is one
// broadcast load. Both forms add the same products in the same order: their results are
// bit-identical.
//   forward:          y[p][0:k] = b + sum over taps t of x_t(p) * W[t][0:k];
//   backward-weights: dW[t][0:k] += x_t(p) * dy[p][0:k] into per-thread partial sums,
//                     db = the sum of dy.
// Each image is first copied, zero-padded, into a small per-thread buffer, so padding and
// strides need no bounds tests in the loops. In bf16 the inputs of the products (x, W, dy)
// are rounded to bfloat16 (to nearest even, as oneDNN's conversion), and the products and
// sums stay FP32, which is what the BF16 kernels compute. Images go to threads in a static
// schedule, and backward-weights sums the threads' partial dW in thread order, so a fixed
// thread count gives bit-identical results.
#pragma once

#include <cstddef>

#include "backend/backend.h"

namespace mnistctl::cpu {

// Whether these loops run `d` here: an x86 CPU with AVX-512F, one input channel, k filters
// with k = 16a + r, a <= 2 and r in {0, 4, 8} (4, 8, 16, 20, 24, 32, 36, 40), and where
// r > 0 a column stride with (16 / r - 1) * sw < 16 (the pixels sharing a vector lie within
// one 16-float load of the row). The two functions below throw RuntimeError otherwise.
bool single_channel_conv_supported(const ConvDesc& d);

// Which loops: `best` takes the tap form where single_channel_conv_tap_form() says it
// applies, the block form otherwise; `blocks` forces the block form (for the tests, which
// check both).
enum class SingleChannelForm { best, blocks };

// Whether `best` takes the tap form for a supported `d`: a 5x5 or 3x3 kernel, column stride
// 1, and, with rest channels, at least 16 / rest output columns.
bool single_channel_conv_tap_form(const ConvDesc& d);

// Bytes of scratch the two functions need with `threads` threads.
size_t single_channel_conv_scratch_bytes(const ConvDesc& d, int threads);

// y (N, K, OH, OW) nhwc = conv(x, w) + b; x (N, 1, H, W), w KCRS (K, 1, KH, KW), b (K) or null.
void single_channel_conv_forward(const ConvDesc& d, const float* x, const float* w, const float* b, float* y,
                                 bool bf16, void* scratch, int threads,
                                 SingleChannelForm form = SingleChannelForm::best);

// dw (K, 1, KH, KW) = the gradient of the weights, overwritten; db (K), when not null, too.
// dy (N, K, OH, OW) nhwc.
void single_channel_conv_backward_weights(const ConvDesc& d, const float* x, const float* dy, float* dw,
                                          float* db, bool bf16, void* scratch, int threads,
                                          SingleChannelForm form = SingleChannelForm::best);

}  // namespace mnistctl::cpu
