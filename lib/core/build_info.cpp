// See build_info.h. The values come from lib/core/CMakeLists.txt as definitions on this one
// file, so a new commit recompiles only it.
#include "core/build_info.h"

namespace mnistctl {

const BuildInfo& build_info() {
  static const BuildInfo info{MNISTCTL_BUILD_VERSION, MNISTCTL_BUILD_COMMIT, MNISTCTL_BUILD_COMPILER,
                              MNISTCTL_BUILD_TYPE};
  return info;
}

}  // namespace mnistctl
