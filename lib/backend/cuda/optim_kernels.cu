// SGD (with optional momentum and L2 weight decay) and Adam, one fused pass each over the
// parameter, its gradient and its state. See optim_kernels.h.
//
// Fusing the weight decay, state update and weight update reads each array once; with
// LeNet's 431k parameters the whole update is a few microseconds.
#include "backend/cuda/optim_kernels.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.h"

namespace mnistctl::cuda {
namespace {

// Each update's loop is written once and run by two kernels: the eager one, with its scalars
// as arguments, and the one of a captured step, which reads them from the step slot
// (step_slot.h) when it runs. One body: the same arithmetic by construction.
__device__ __forceinline__ void sgd_body(float* w, const float* g, float* mom, int64_t n, float lr, float momentum,
                                         float wd) {
  MNISTCTL_GRID_STRIDE(i, n) {
    float gi = g[i] + wd * w[i];
    if (mom) {
      float m = momentum * mom[i] - lr * gi;
      mom[i] = m;
      w[i] += m;
    } else {
      w[i] += -lr * gi;
    }
  }
}

__device__ __forceinline__ void adam_body(float* w, const float* g, float* m, float* v, int64_t n, float lr,
                                          float beta1, float beta2, float eps, float wd, float bc1, float bc2) {
  MNISTCTL_GRID_STRIDE(i, n) {
    float gi = g[i] + wd * w[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
  }
}

__global__ void sgd_kernel(float* w, const float* g, float* mom, int64_t n, float lr, float momentum, float wd) {
  sgd_body(w, g, mom, n, lr, momentum, wd);
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                            float beta2, float eps, float wd, float bc1, float bc2) {
  adam_body(w, g, m, v, n, lr, beta1, beta2, eps, wd, bc1, bc2);
}

__global__ void sgd_slot_kernel(float* w, const float* g, float* mom, int64_t n, const DeviceStepSlot* slot,
                                float momentum, float wd) {
  sgd_body(w, g, mom, n, slot->lr, momentum, wd);
}

__global__ void adam_slot_kernel(float* w, const float* g, float* m, float* v, int64_t n,
                                 const DeviceStepSlot* slot, float beta1, float beta2, float eps, float wd) {
  adam_body(w, g, m, v, n, slot->lr, beta1, beta2, eps, wd, slot->bc1, slot->bc2);
}

}  // namespace

void launch_sgd_update_slot(float* w, const float* g, float* mom, int64_t n, const DeviceStepSlot* slot,
                            float momentum, float wd, cudaStream_t s) {
  if (n <= 0) return;
  sgd_slot_kernel<<<grid_for(n), kThreads, 0, s>>>(w, g, mom, n, slot, momentum, wd);
  check_launch("sgd_update (captured)");
}

void launch_adam_update_slot(float* w, const float* g, float* m, float* v, int64_t n, const DeviceStepSlot* slot,
                             float beta1, float beta2, float eps, float wd, cudaStream_t s) {
  if (n <= 0) return;
  adam_slot_kernel<<<grid_for(n), kThreads, 0, s>>>(w, g, m, v, n, slot, beta1, beta2, eps, wd);
  check_launch("adam_update (captured)");
}

void launch_sgd_update(float* w, const float* g, float* mom, int64_t n, float lr, float momentum,
                       float wd, cudaStream_t s) {
  if (n <= 0) return;
  sgd_kernel<<<grid_for(n), kThreads, 0, s>>>(w, g, mom, n, lr, momentum, wd);
  check_launch("sgd_update");
}

void launch_adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr,
                        float beta1, float beta2, float eps, float wd, float bc1, float bc2,
                        cudaStream_t s) {
  if (n <= 0) return;
  adam_kernel<<<grid_for(n), kThreads, 0, s>>>(w, g, m, v, n, lr, beta1, beta2, eps, wd, bc1, bc2);
  check_launch("adam_update");
}

}  // namespace mnistctl::cuda
