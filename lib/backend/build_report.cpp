// build_report() (backend.h): the build identity from core plus the oneDNN library this
// process loaded (dnnl_version(), which may differ from the headers it was built with) and the
// CUDA module: built into this build or not, and present where the loader looks first.
#include <filesystem>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>

#include "backend/backend.h"
#include "backend/cuda_module.h"
#include "core/build_info.h"
#include "core/fs.h"

namespace mnistctl {

std::string build_report() {
  const BuildInfo& b = build_info();
  const dnnl_version_t* v = dnnl_version();
  std::string module = "not built (MNISTCTL_ENABLE_CUDA=OFF)";
  if (MNISTCTL_HAVE_CUDA) {
    std::error_code ec;
    const std::string beside = executable_dir() + "/" + kCudaModuleName;
    const std::string lib = executable_dir() + "/../lib/mnistctl/" + kCudaModuleName;
    if (std::filesystem::exists(beside, ec))
      module = fmt::format("built, present ({})", kCudaModuleName);
    else if (std::filesystem::exists(lib, ec))
      module = fmt::format("built, present (../lib/mnistctl/{})", kCudaModuleName);
    else
      module = fmt::format("built, but {} is not beside the binary", kCudaModuleName);
  }
  return fmt::format(
      "mnistctl {}\n"
      "commit: {}\n"
      "compiler: {} ({})\n"
      "oneDNN: {}.{}.{} (commit {})\n"
      "CUDA module: {}",
      b.version, b.commit, b.compiler, b.build_type, v->major, v->minor, v->patch, v->hash, module);
}

}  // namespace mnistctl
