// softrelu, dropout and mul as grid-stride kernels. See elementwise_kernels.h.
//
// Dropout draws its mask from core/rng.h's stateless hash_uniform(seed, counter + i), the
// same function the CPU backends call, so a GPU run drops exactly the units a CPU run does:
// no cuRAND state to carry in checkpoints and nothing that depends on the launch shape.
#include "backend/cuda/elementwise_kernels.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.h"
#include "core/rng.h"

namespace mnistctl::cuda {
namespace {

__global__ void softrelu_forward_kernel(const float* x, float* y, int64_t n) {
  MNISTCTL_GRID_STRIDE(i, n) {
    float v = x[i];
    y[i] = fmaxf(v, 0.0f) + log1pf(expf(-fabsf(v)));
  }
}

__global__ void softrelu_backward_kernel(const float* x, const float* dy, float* dx, int64_t n) {
  MNISTCTL_GRID_STRIDE(i, n) { dx[i] = dy[i] / (1.0f + expf(-x[i])); }
}

// Dropout's loop, written once for its two kernels: the eager one (`counter` an argument)
// and the one of a captured step (counter = slot->step * step_range + offset, step_slot.h).
__device__ __forceinline__ void dropout_body(float p, float keep_scale, uint64_t seed, uint64_t counter,
                                             const float* x, float* y, float* mask, int64_t n) {
  MNISTCTL_GRID_STRIDE(i, n) {
    float m = hash_uniform(seed, counter + uint64_t(i)) >= p ? keep_scale : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

__global__ void dropout_kernel(float p, float keep_scale, uint64_t seed, uint64_t counter, const float* x, float* y,
                               float* mask, int64_t n) {
  dropout_body(p, keep_scale, seed, counter, x, y, mask, n);
}

__global__ void dropout_slot_kernel(float p, float keep_scale, uint64_t seed, const DeviceStepSlot* slot,
                                    uint64_t step_range, uint64_t offset, const float* x, float* y, float* mask,
                                    int64_t n) {
  dropout_body(p, keep_scale, seed, slot->step * step_range + offset, x, y, mask, n);
}

__global__ void mul_kernel(const float* a, const float* b, float* out, int64_t n) {
  MNISTCTL_GRID_STRIDE(i, n) { out[i] = a[i] * b[i]; }
}

}  // namespace

void launch_softrelu_forward(const float* x, float* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  softrelu_forward_kernel<<<grid_for(n), kThreads, 0, s>>>(x, y, n);
  check_launch("act_forward (softrelu)");
}

void launch_softrelu_backward(const float* x, const float* dy, float* dx, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  softrelu_backward_kernel<<<grid_for(n), kThreads, 0, s>>>(x, dy, dx, n);
  check_launch("act_backward (softrelu)");
}

void launch_dropout_forward(float p, float keep_scale, uint64_t seed, uint64_t counter, const float* x, float* y,
                            float* mask, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  dropout_kernel<<<grid_for(n), kThreads, 0, s>>>(p, keep_scale, seed, counter, x, y, mask, n);
  check_launch("dropout_forward");
}

void launch_dropout_forward_slot(float p, float keep_scale, uint64_t seed, const DeviceStepSlot* slot,
                                 uint64_t step_range, uint64_t offset, const float* x, float* y, float* mask,
                                 int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  dropout_slot_kernel<<<grid_for(n), kThreads, 0, s>>>(p, keep_scale, seed, slot, step_range, offset, x, y, mask, n);
  check_launch("dropout_forward (captured)");
}

void launch_mul(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  mul_kernel<<<grid_for(n), kThreads, 0, s>>>(a, b, out, n);
  check_launch("mul");
}

}  // namespace mnistctl::cuda
