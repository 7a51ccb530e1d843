// See build_info.h. The values come from lib/core/CMakeLists.txt as definitions on this one
// file, and the commit from build_commit.h (written at build time), so a new commit
// recompiles only this file.
#include "core/build_info.h"

#include "build_commit.h"

namespace mnistctl {

const BuildInfo& build_info() {
  static const BuildInfo info{MNISTCTL_BUILD_VERSION, MNISTCTL_BUILD_COMMIT, MNISTCTL_BUILD_COMPILER,
                              MNISTCTL_BUILD_TYPE};
  return info;
}

}  // namespace mnistctl
