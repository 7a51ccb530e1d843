// Elementwise kernels cuDNN has no op for: softrelu, dropout, the product of two tensors
// (elementwise_kernels.cu). Host-callable launchers on the given stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/step_slot.h"

namespace mnistctl::cuda {

// y = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|) so that it neither overflows for
// large x nor loses the small values for very negative x.
void launch_softrelu_forward(const float* x, float* y, int64_t n, cudaStream_t s);
// dx = dy * sigmoid(x). dx may alias dy.
void launch_softrelu_backward(const float* x, const float* dy, float* dx, int64_t n, cudaStream_t s);

// mask[i] = hash_uniform(seed, counter + i) >= p ? keep_scale : 0;  y = x * mask, where
// keep_scale = 1 / (1 - p) (0 for p >= 1), computed once on the host as the reference does.
void launch_dropout_forward(float p, float keep_scale, uint64_t seed, uint64_t counter, const float* x, float* y,
                            float* mask, int64_t n, cudaStream_t s);

// The same with counter = slot->step * step_range + offset, read when the kernel runs.
void launch_dropout_forward_slot(float p, float keep_scale, uint64_t seed, const DeviceStepSlot* slot,
                                 uint64_t step_range, uint64_t offset, const float* x, float* y, float* mask,
                                 int64_t n, cudaStream_t s);

// out = a * b.
void launch_mul(const float* a, const float* b, float* out, int64_t n, cudaStream_t s);

}  // namespace mnistctl::cuda
