// Shared by the fuzz targets. The readers under test take file paths (as mnistctl does), so
// each input is written to one scratch file per process and read back through the real code.
// An input may end in a mnistctl::Error (the clear refusal the project promises); anything
// else -- another exception, a crash, a sanitizer report, an allocation over the fuzzer's
// limit, a hang -- is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace mnistctl::fuzz {

// $TMPDIR (else /dev/shm where it exists, else /tmp) / mnistctl-fuzz-<pid>-<name>.
inline std::string scratch_path(const std::string& name) {
  std::string dir;
  if (const char* t = std::getenv("TMPDIR"); t && *t) dir = t;
  else if (access("/dev/shm", W_OK) == 0) dir = "/dev/shm";
  else dir = "/tmp";
  return dir + "/mnistctl-fuzz-" + std::to_string(getpid()) + "-" + name;
}

inline const std::string& write_scratch(const std::string& name, const void* data, size_t size) {
  static std::string path;
  path = scratch_path(name);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();  // the harness itself failed, not the code under test
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace mnistctl::fuzz
