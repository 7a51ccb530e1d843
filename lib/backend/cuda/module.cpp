// The entry point of libmnistctl_cuda.so: the one symbol backend/loader.cpp looks up with
// dlsym (the C ABI is in backend/cuda_module.h).
//
// Everything that can go wrong before a backend exists (no driver, an old driver, no
// device, an index past the last device, a cuDNN or cuBLAS that fails to start) comes back
// as nullptr plus one readable line, which make_backend() turns into a UsageError (exit 2):
//   no NVIDIA driver found (libcuda.so.1 is not loadable)      -- nothing else: no CUDA error
//   <cudaGetErrorString> (<cudaGetErrorName>)                   -- a driver, but no device count
//   gpu:N does not exist: K CUDA devices found
// Nothing here may throw across the C boundary.
#include <dlfcn.h>

#include <cstdio>
#include <exception>
#include <string>

#include <cuda_runtime_api.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda_module.h"

namespace {

void set_error(char* err, size_t err_len, const std::string& msg) {
  if (err && err_len > 0) std::snprintf(err, err_len, "%s", msg.c_str());
}

std::string cuda_version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// Whether the driver library can be loaded at all. cudart reports a missing libcuda.so.1 as
// cudaErrorInsufficientDriver ("CUDA driver version is insufficient for CUDA runtime
// version"), which reads as an old driver; asking the loader tells the two cases apart.
bool driver_loadable() {
  void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!h) return false;
  dlclose(h);  // cudart keeps its own reference when it loaded it
  return true;
}

// Why cudaGetDeviceCount failed, in words a user can act on: either there is no driver (and
// then nothing else, the CUDA error would contradict it), or the CUDA error string and name.
std::string no_device_reason(cudaError_t e) {
  if (!driver_loadable()) return "no NVIDIA driver found (libcuda.so.1 is not loadable)";
  std::string what = std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")";
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  if (e == cudaErrorInsufficientDriver && driver > 0)
    return "the NVIDIA driver supports CUDA " + cuda_version(driver) + ", this build needs CUDA " +
           cuda_version(runtime) + ": " + what;
  return what;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) mnistctl::Backend* mnistctl_cuda_create(
    int index, int abi, const mnistctl::BackendOptions* opts, char* err, size_t err_len) {
  if (abi != mnistctl::kCudaModuleAbi) {
    set_error(err, err_len,
              std::string(mnistctl::kCudaModuleName) + " has module ABI " +
                  std::to_string(mnistctl::kCudaModuleAbi) + " but mnistctl expects " +
                  std::to_string(abi) + ": use the module built with this mnistctl");
    return nullptr;
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    set_error(err, err_len, "no usable CUDA device: " + no_device_reason(e));
    return nullptr;
  }
  if (index < 0 || index >= count) {
    set_error(err, err_len,
              "gpu:" + std::to_string(index) + " does not exist: " + std::to_string(count) +
                  (count == 1 ? " CUDA device found" : " CUDA devices found"));
    return nullptr;
  }
  if (opts && opts->precision != mnistctl::Precision::fp32) {  // check_precision refuses it first
    set_error(err, err_len, "the GPU backend does not implement BF16 yet");
    return nullptr;
  }
  try {
    mnistctl::BackendOptions o = opts ? *opts : mnistctl::BackendOptions{};
    return new mnistctl::cuda::CudaBackend(index, o);
  } catch (const std::exception& ex) {
    set_error(err, err_len, "cannot start the CUDA backend on gpu:" + std::to_string(index) + ": " + ex.what());
  } catch (...) {
    set_error(err, err_len, "cannot start the CUDA backend on gpu:" + std::to_string(index));
  }
  return nullptr;
}
