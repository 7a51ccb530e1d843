// Error checks for the CUDA backend: every CUDA, cuDNN and cuBLAS status that is not
// success becomes a mnistctl::RuntimeError (exit 3) naming the op and the library's own
// error string, e.g. "conv_forward: cudnnConvolutionForward: CUDNN_STATUS_BAD_PARAM".
//
// Functions, not macros with hidden control flow, so the call sites read as plain calls:
//   check_cuda(cudaMemcpyAsync(...), "upload", "cudaMemcpyAsync");
// Kept free of fmt so that .cu files may include it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <climits>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace mnistctl::cuda {

inline std::string op_error(const char* op, const char* call, const char* what) {
  return std::string(op) + ": " + call + ": " + what;
}

inline void check_cuda(cudaError_t e, const char* op, const char* call) {
  if (e != cudaSuccess) throw RuntimeError(op_error(op, call, cudaGetErrorString(e)));
}

inline void check_cudnn(cudnnStatus_t s, const char* op, const char* call) {
  if (s != CUDNN_STATUS_SUCCESS) throw RuntimeError(op_error(op, call, cudnnGetErrorString(s)));
}

inline void check_cublas(cublasStatus_t s, const char* op, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS) throw RuntimeError(op_error(op, call, cublasGetStatusString(s)));
}

// An argument check of an op: RuntimeError "op: what" when it fails.
inline void require(bool ok, const char* op, const std::string& what) {
  if (!ok) throw RuntimeError(std::string(op) + ": " + what);
}

// cuDNN and cuBLAS take int extents.
inline int to_int(int64_t v, const char* op) {
  require(v >= 0 && v <= INT_MAX, op, "extent " + std::to_string(v) + " exceeds the int range of cuDNN/cuBLAS");
  return static_cast<int>(v);
}

// After a kernel launch: catches bad launch configurations at once (no sync); faults
// inside the kernel surface at the next synchronising call, named by that call.
inline void check_launch(const char* op) { check_cuda(cudaGetLastError(), op, "kernel launch"); }

}  // namespace mnistctl::cuda
