// What this binary was built from: version, git commit (at configure time), compiler.
// backend/build_report.h adds what only the backend room knows (oneDNN, the CUDA module).
#pragma once

#include <string>

namespace mnistctl {

struct BuildInfo {
  std::string version;   // the project's version (CMake project())
  std::string commit;    // `git describe --always --dirty` at configure time; "unknown" outside git
  std::string compiler;  // e.g. "GNU 12.2.0"
  std::string build_type;
};

const BuildInfo& build_info();

}  // namespace mnistctl
