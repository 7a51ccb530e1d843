// make_backend(): turns a --ctx string into a Backend.
//
// "ref" and "cpu" are linked in. "gpu[:N]" loads libmnistctl_cuda.so with dlopen, so a CPU
// run never maps cuDNN or cuBLAS (about 80 ms and 215 MB at start-up) and the binary starts
// on machines without any CUDA library. The module is looked for beside the executable,
// then in ../lib/mnistctl, then through the loader's normal search ($MNISTCTL_CUDA_MODULE
// overrides all of it).
#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/backend.h"
#include "backend/cpu/dnnl_backend.h"
#include "backend/cuda_module.h"
#include "backend/ref/ref_backend.h"
#include "core/closest.h"
#include "core/error.h"
#include "core/fs.h"

namespace mnistctl {
namespace {

bool parse_gpu_index(const std::string& ctx, int& index) {
  if (ctx == "gpu") {
    index = 0;
    return true;
  }
  if (ctx.rfind("gpu:", 0) != 0 || ctx.size() == 4 || ctx.size() > 8) return false;
  index = 0;
  for (size_t i = 4; i < ctx.size(); ++i) {
    if (ctx[i] < '0' || ctx[i] > '9') return false;
    index = index * 10 + (ctx[i] - '0');
  }
  return true;
}

void* open_cuda_module(std::string& tried) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("MNISTCTL_CUDA_MODULE"); env && *env) {
    candidates.push_back(env);
  } else {
    std::string dir = executable_dir();
    candidates.push_back(dir + "/" + kCudaModuleName);
    candidates.push_back(dir + "/../lib/mnistctl/" + kCudaModuleName);
    candidates.push_back(kCudaModuleName);
  }
  for (const auto& path : candidates) {
    if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    const char* err = dlerror();
    tried += fmt::format("{}{}", tried.empty() ? "" : "; ", err ? err : path);
  }
  return nullptr;
}

std::unique_ptr<Backend> make_gpu_backend(const std::string& ctx, int index,
                                          const BackendOptions& opts) {
#if !MNISTCTL_HAVE_CUDA
  throw UsageError(fmt::format(
      "--ctx {}: this mnistctl was built without the CUDA backend (MNISTCTL_ENABLE_CUDA=OFF)", ctx));
#endif
  std::string tried;
  void* h = open_cuda_module(tried);
  if (!h) throw UsageError(fmt::format("--ctx {}: cannot load the CUDA backend: {}", ctx, tried));
  auto create = reinterpret_cast<CudaCreateFn>(dlsym(h, kCudaCreateSymbol));
  if (!create)
    throw UsageError(fmt::format("--ctx {}: {} has no {}", ctx, kCudaModuleName, kCudaCreateSymbol));
  char err[512] = {0};
  Backend* b = create(index, kCudaModuleAbi, &opts, err, sizeof err);
  // The module stays loaded for the life of the process: backends and tensors made by it
  // hold its code.
  if (!b) throw UsageError(fmt::format("--ctx {}: {}", ctx, err));
  return std::unique_ptr<Backend>(b);
}

}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& ctx, const BackendOptions& opts) {
  if (ctx == "ref") return make_ref_backend();
  if (ctx == "cpu") return make_dnnl_backend(opts.threads, opts.precision);
  int index = 0;
  if (parse_gpu_index(ctx, index)) return make_gpu_backend(ctx, index, opts);
  throw UsageError(fmt::format("--ctx {}: {}", ctx, context_problem(ctx)));
}

std::string context_problem(const std::string& ctx) {
  int index = 0;
  if (ctx == "ref" || ctx == "cpu" || parse_gpu_index(ctx, index)) return "";
  // Other tools' names for the same devices first, then typos.
  std::string hint;
  const std::string low = ascii_lower(ctx);
  for (const char* gpu_word : {"cuda", "gpu", "nvidia"})
    if (low.rfind(gpu_word, 0) == 0) hint = "gpu" + low.substr(std::string(gpu_word).size());
  if (!hint.empty() && !parse_gpu_index(hint, index)) hint = "gpu";
  if (hint.empty()) hint = closest_match(low, {"cpu", "gpu", "ref"});
  return fmt::format("unknown context '{}' (expected cpu, gpu, gpu:N or ref{})", ctx,
                     hint.empty() ? "" : fmt::format("; did you mean '{}'?", hint));
}

void check_precision(const std::string& ctx, Precision precision, const std::string& field) {
  if (precision == Precision::fp32) return;
  std::string gap;
  if (ctx == "cpu") gap = dnnl_precision_gap(precision);
  else if (ctx == "ref") gap = "the reference backend computes in FP32 only";
  else gap = "the GPU backend does not implement BF16 yet";
  if (!gap.empty()) throw UsageError(fmt::format("{} bf16 with --ctx {}: {} (use fp32)", field, ctx, gap));
}

std::vector<std::string> known_contexts() {
  if (MNISTCTL_HAVE_CUDA) return {"cpu", "gpu", "gpu:N"};
  return {"cpu"};
}

}  // namespace mnistctl
