// Kernels for filling, batch assembly and bias broadcast (data_kernels.cu).
//
// Plain host-callable launchers so that the g++-compiled backend needs no CUDA syntax.
// All run on the given stream and never synchronise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/step_slot.h"

namespace mnistctl::cuda {

// x[i] = value for i < n.
void launch_fill(float* x, int64_t n, float value, cudaStream_t s);

// x[i, k] = images[order[first + i] * sample_size + k] / 255 and labels[i] = labels_u8[...]
// for i < n. `num_samples` bounds the indices: an index out of range gives a zero image and
// label -1 instead of reading past the dataset.
void launch_gather_batch(const uint8_t* images, const uint8_t* labels_u8, int64_t sample_size,
                         int64_t num_samples, const int32_t* order, int64_t first, int64_t n,
                         float* x, float* labels, cudaStream_t s);

// The same, with `first` read from slot->first when the kernel runs (a captured step).
void launch_gather_batch_slot(const uint8_t* images, const uint8_t* labels_u8, int64_t sample_size,
                              int64_t num_samples, const int32_t* order, const DeviceStepSlot* slot, int64_t n,
                              float* x, float* labels, cudaStream_t s);

// y[i, j] = b[j] for an (rows, cols) row-major y: the fully-connected bias, written before a
// GEMM with beta = 1 adds x W^T to it (one pass instead of two).
void launch_bias_rows(const float* b, int64_t rows, int64_t cols, float* y, cudaStream_t s);

}  // namespace mnistctl::cuda
