// Fill, batch assembly and bias broadcast. See data_kernels.h.
//
// gather_batch is what keeps the training step free of host-device traffic: the uint8
// dataset and the epoch's shuffled order already sit in device memory, so a batch is one
// launch that reads 784 bytes per image and writes floats. Dividing by 255 (not multiplying
// by 1/255) gives the same bits as the reference backend.
#include "backend/cuda/data_kernels.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.h"

namespace mnistctl::cuda {
namespace {

__global__ void fill_kernel(float* x, int64_t n, float value) {
  MNISTCTL_GRID_STRIDE(i, n) { x[i] = value; }
}

// The gather's loop, written once for its two kernels: the eager one (`first` an argument)
// and the one of a captured step (`first` read from the step slot, step_slot.h).
__device__ __forceinline__ void gather_body(const uint8_t* images, const uint8_t* labels_u8, int64_t sample_size,
                                            int64_t num_samples, const int32_t* order, int64_t first, int64_t n,
                                            float* x, float* labels) {
  int64_t total = n * sample_size;
  MNISTCTL_GRID_STRIDE(t, total) {
    int64_t i = t / sample_size, k = t - i * sample_size;
    int64_t idx = order[first + i];
    bool ok = idx >= 0 && idx < num_samples;
    x[t] = ok ? float(images[idx * sample_size + k]) / 255.0f : 0.0f;
    if (k == 0) labels[i] = ok ? float(labels_u8[idx]) : -1.0f;
  }
}

__global__ void gather_kernel(const uint8_t* images, const uint8_t* labels_u8, int64_t sample_size,
                              int64_t num_samples, const int32_t* order, int64_t first, int64_t n,
                              float* x, float* labels) {
  gather_body(images, labels_u8, sample_size, num_samples, order, first, n, x, labels);
}

__global__ void gather_slot_kernel(const uint8_t* images, const uint8_t* labels_u8, int64_t sample_size,
                                   int64_t num_samples, const int32_t* order, const DeviceStepSlot* slot,
                                   int64_t n, float* x, float* labels) {
  gather_body(images, labels_u8, sample_size, num_samples, order, slot->first, n, x, labels);
}

__global__ void bias_rows_kernel(const float* b, int64_t rows, int64_t cols, float* y) {
  int64_t total = rows * cols;
  MNISTCTL_GRID_STRIDE(t, total) { y[t] = b[t % cols]; }
}

}  // namespace

void launch_fill(float* x, int64_t n, float value, cudaStream_t s) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n), kThreads, 0, s>>>(x, n, value);
  check_launch("fill");
}

void launch_gather_batch(const uint8_t* images, const uint8_t* labels_u8, int64_t sample_size,
                         int64_t num_samples, const int32_t* order, int64_t first, int64_t n,
                         float* x, float* labels, cudaStream_t s) {
  if (n <= 0 || sample_size <= 0) return;
  gather_kernel<<<grid_for(n * sample_size), kThreads, 0, s>>>(images, labels_u8, sample_size,
                                                              num_samples, order, first, n, x, labels);
  check_launch("gather_batch");
}

void launch_gather_batch_slot(const uint8_t* images, const uint8_t* labels_u8, int64_t sample_size,
                              int64_t num_samples, const int32_t* order, const DeviceStepSlot* slot, int64_t n,
                              float* x, float* labels, cudaStream_t s) {
  if (n <= 0 || sample_size <= 0) return;
  gather_slot_kernel<<<grid_for(n * sample_size), kThreads, 0, s>>>(images, labels_u8, sample_size,
                                                                   num_samples, order, slot, n, x, labels);
  check_launch("gather_batch (captured)");
}

void launch_bias_rows(const float* b, int64_t rows, int64_t cols, float* y, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return;
  bias_rows_kernel<<<grid_for(rows * cols), kThreads, 0, s>>>(b, rows, cols, y);
  check_launch("fc_forward (bias)");
}

}  // namespace mnistctl::cuda
