// Softmax with cross-entropy, forward and backward (softmax_kernels.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace mnistctl::cuda {

// probs = softmax(logits) per row of an (n, c) matrix. With labels (may be null):
// row_stats[2i] = -log(max(probs[i, label_i], 1e-12)) and row_stats[2i+1] = 1 when the
// first argmax equals label_i; then, if metrics is non-null, adds the sums over rows and n
// to metrics[0..2] in a fixed order (so the sums are the same bits on every run).
// row_stats must hold 2n floats when labels is given.
void launch_softmax_xent_forward(const float* logits, const float* labels, int64_t n, int64_t c,
                                 float* probs, float* row_stats, float* metrics, cudaStream_t s);

// dlogits = (probs - onehot(labels)) * scale.
void launch_softmax_xent_backward(const float* probs, const float* labels, int64_t n, int64_t c,
                                  float scale, float* dlogits, cudaStream_t s);

}  // namespace mnistctl::cuda
