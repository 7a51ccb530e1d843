// The C ABI between make_backend() and libmnistctl_cuda.so. Kept tiny and versioned:
// the module and the executable must come from the same build.
#pragma once

#include <cstddef>

namespace mnistctl {
class Backend;
struct BackendOptions;

inline constexpr const char* kCudaModuleName = "libmnistctl_cuda.so";
inline constexpr const char* kCudaCreateSymbol = "mnistctl_cuda_create";
inline constexpr int kCudaModuleAbi = 5;  // bump whenever backend.h changes

// Returns a new Backend for device `index`, or nullptr with a one-line reason in `err`
// (no driver, no device, index out of range: the CUDA error string and the device count).
using CudaCreateFn = Backend* (*)(int index, int abi, const BackendOptions* opts, char* err,
                                  size_t err_len);
}  // namespace mnistctl
