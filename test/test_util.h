// Helpers shared by the tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace mnistctl::test {

// The real MNIST files: $MNISTCTL_TEST_MNIST, else ../shared/datasets/mnist beside the
// checkout. Empty when absent (tests then SKIP with a message).
inline std::string mnist_dir() {
  if (const char* d = std::getenv("MNISTCTL_TEST_MNIST"); d && *d) return d;
  std::filesystem::path p = std::filesystem::path(MNISTCTL_SOURCE_DIR) / ".." / "shared" /
                            "datasets" / "mnist";
  if (std::filesystem::exists(p / "t10k-images-idx3-ubyte.gz")) return p.lexically_normal().string();
  return "";
}

// A fresh empty folder under the build tree for one test.
inline std::string scratch_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(MNISTCTL_BINARY_DIR) / "test-scratch" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace mnistctl::test
