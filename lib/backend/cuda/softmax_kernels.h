// Softmax with cross-entropy, forward and backward (softmax_kernels.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace mnistctl::cuda {

// The cross-entropy half of the forward pass, after cuDNN's softmax wrote probs: per row of
// an (n, c) matrix, row_stats[2i] = -log(max(probs[i, label_i], 1e-12)) and
// row_stats[2i+1] = 1 when the first argmax of the logits equals label_i; then, if metrics is
// non-null, adds the sums over rows and n to metrics[0..2] in a fixed order (so the sums are
// the same bits on every run). row_stats must hold 2n floats.
void launch_xent_stats(const float* logits, const float* probs, const float* labels, int64_t n,
                       int64_t c, float* row_stats, float* metrics, cudaStream_t s);

// dlogits = (probs - onehot(labels)) * scale.
void launch_softmax_xent_backward(const float* probs, const float* labels, int64_t n, int64_t c,
                                  float scale, float* dlogits, cudaStream_t s);

}  // namespace mnistctl::cuda
