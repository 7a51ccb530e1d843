// In-place optimizer updates (optim_kernels.cu), as Backend::sgd_update / adam_update.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/step_slot.h"

namespace mnistctl::cuda {

// g' = g + wd*w;  with mom: mom = momentum*mom - lr*g', w += mom;  without: w += -lr*g'.
void launch_sgd_update(float* w, const float* g, float* mom, int64_t n, float lr, float momentum,
                       float wd, cudaStream_t s);

// g' = g + wd*w;  m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2;
// w -= lr * (m / bc1) / (sqrt(v / bc2) + eps), with bc1 = 1 - b1^step, bc2 = 1 - b2^step
// (the bias corrections, computed once on the host in double).
void launch_adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr,
                        float beta1, float beta2, float eps, float wd, float bc1, float bc2,
                        cudaStream_t s);

// The same two with lr, bc1 and bc2 read from the step slot when the kernel runs.
void launch_sgd_update_slot(float* w, const float* g, float* mom, int64_t n, const DeviceStepSlot* slot,
                            float momentum, float wd, cudaStream_t s);
void launch_adam_update_slot(float* w, const float* g, float* m, float* v, int64_t n, const DeviceStepSlot* slot,
                             float beta1, float beta2, float eps, float wd, cudaStream_t s);

}  // namespace mnistctl::cuda
