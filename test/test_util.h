// Helpers shared by the tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace mnistctl::test {

// Assertions made so far by the running test case (warnings and INFO excluded): skip_test
// refuses to turn a test that has already checked something into a skip.
inline int& assertions_so_far() {
  static int n = 0;
  return n;
}
// Each file that includes this header registers the listener once; only the first instance
// counts, so the figure is the same however many files an executable has.
inline int& assertion_counters_made() {
  static int n = 0;
  return n;
}
struct AssertionCounter : Catch::TestEventListenerBase {
  explicit AssertionCounter(const Catch::ReporterConfig& config)
      : TestEventListenerBase(config), counts_(assertion_counters_made()++ == 0) {}
  const bool counts_;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    TestEventListenerBase::testCaseStarting(info);
    assertions_so_far() = 0;
  }
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    const Catch::ResultWas::OfType t = stats.assertionResult.getResultType();
    if (counts_ && t != Catch::ResultWas::Warning && t != Catch::ResultWas::Info) ++assertions_so_far();
    return true;
  }
};

// The exit code that ctest reads as "skipped" (SKIP_RETURN_CODE on every test; the value
// comes from test/CMakeLists.txt, the one place it is set).
#ifndef MNISTCTL_TEST_SKIP_CODE
#error "MNISTCTL_TEST_SKIP_CODE comes with MNISTCTL_TEST_DEFS (test/CMakeLists.txt)"
#endif
constexpr int kSkipReturnCode = MNISTCTL_TEST_SKIP_CODE;

// Ends the test process as skipped, saying why. Only for missing hardware (no GPU, no BF16)
// or, outside CI, missing test data; called before the test asserts anything, so a skip can
// never hide a failed check.
[[noreturn]] inline void skip_test(const std::string& why) {
  if (assertions_so_far() > 0) {
    std::printf("FAIL: test skipped after %d assertion(s) (a skip must come first): %s\n", assertions_so_far(),
                why.c_str());
    std::fflush(stdout);
    std::exit(1);
  }
  std::printf("SKIP: %s\n", why.c_str());
  std::fflush(stdout);
  std::exit(kSkipReturnCode);
}

// Test data (the real MNIST files, a Debian dataset package) that is absent: with CI set in
// the environment the test fails, since a green CI run must have run it; elsewhere it skips.
[[noreturn]] inline void missing_test_data(const std::string& what) {
  if (const char* ci = std::getenv("CI"); ci && *ci) {
    std::printf("FAIL: %s (CI is set: missing test data is a failure, not a skip)\n", what.c_str());
    std::fflush(stdout);
    std::exit(1);
  }
  skip_test(what);
}

// The real MNIST files: $MNISTCTL_TEST_MNIST, else ../shared/datasets/mnist beside the
// checkout. Empty when absent (tests then call missing_test_data).
inline std::string mnist_dir() {
  namespace fs = std::filesystem;
  auto has_mnist = [](const fs::path& p) { return fs::exists(p / "t10k-images-idx3-ubyte.gz"); };
  if (const char* d = std::getenv("MNISTCTL_TEST_MNIST"); d && *d) return has_mnist(d) ? d : "";
  fs::path p = fs::path(MNISTCTL_SOURCE_DIR) / ".." / "shared" / "datasets" / "mnist";
  if (has_mnist(p)) return p.lexically_normal().string();
  return "";
}

// A shipped config, configs/<name> in the source tree: the checkout this build came from,
// unless the test names another (test_gpu, run from a relocated bundle by gpu-check.sh).
inline std::string config_file(const std::string& name, const std::string& source_dir = MNISTCTL_SOURCE_DIR) {
  return source_dir + "/configs/" + name;
}

// A fresh empty folder under the build tree for one test.
inline std::string scratch_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(MNISTCTL_BINARY_DIR) / "test-scratch" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// First in a test, before any assertion, where real MNIST may be skipped without: skips
// (fails with CI set) when it is absent.
inline void skip_without_mnist() {
  if (mnist_dir().empty()) missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
}

// A data root (the fresh scratch folder `name`) whose <dataset>/ folder links to the real
// files: MNIST from mnist_dir(), Fashion-MNIST from Debian's dataset-fashion-mnist. Fails the
// test where they are absent (a test that may skip calls skip_without_mnist first).
inline std::string data_root(const std::string& name, const std::string& dataset = "mnist") {
  namespace fs = std::filesystem;
  const std::string src = dataset == "mnist" ? mnist_dir() : "/usr/share/datasets/" + dataset;
  if (src.empty() || !fs::exists(src + "/t10k-images-idx3-ubyte.gz"))
    FAIL("real " << dataset << " not found (MNIST: ../shared/datasets/mnist beside the checkout or "
                 "$MNISTCTL_TEST_MNIST; Fashion-MNIST: Debian's dataset-fashion-mnist, installed by scripts/setup.sh)");
  const std::string root = scratch_dir(name);
  fs::create_directories(root + "/" + dataset);
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    fs::create_symlink(fs::absolute(fs::path(src) / f), fs::path(root) / dataset / f);
  return root;
}

// A whole file as bytes (empty when it cannot be read).
// What `f` throws (its what()), or "" when it returns: for CHECK_THAT(..., Contains(...)).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sets (or unsets, value nullopt) an environment variable for one scope.
class EnvGuard {
 public:
  EnvGuard(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value) ::setenv(name_.c_str(), value->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  ~EnvGuard() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// max |got - want| / max(max |want|, 1e-6), the yardstick of the kernel tests against a
// double reference; infinite when anything in `got` is NaN or Inf.
inline double rel_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0, scale = 1e-6;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return worst / scale;
}

// n floats uniform in [lo, hi), drawn from rng (core/rng.h's Pcg32) in order: the kernel
// tests' random inputs. A template, so that the tests without the library need no rng.h.
template <class Rng>
std::vector<float> random_floats(Rng& rng, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = rng.uniform(lo, hi);
  return v;
}

// Guard floats after a kernel's buffer. The sanitizers do not check masked vector loads and
// stores, so an overrun must show in these.
constexpr size_t kGuardFloats = 64;
constexpr float kGuardValue = -7.25f;

// `v` followed by kGuardFloats guard floats.
inline std::vector<float> guarded(std::vector<float> v) {
  v.insert(v.end(), kGuardFloats, kGuardValue);
  return v;
}
// `g` without its guard floats, failing the test where one was touched.
inline std::vector<float> unguard(std::vector<float> g, const char* name) {
  for (size_t i = g.size() - kGuardFloats; i < g.size(); ++i) {
    INFO(name << ": guard float " << i - (g.size() - kGuardFloats) << " past the end");
    REQUIRE(g[i] == kGuardValue);
  }
  g.resize(g.size() - kGuardFloats);
  return g;
}

// Whether the kernel holds madvise(MADV_HUGEPAGE) advice for the mapping that holds `p`: the
// "hg" of its VmFlags in /proc/self/smaps (the advice itself, whether or not huge pages were
// free to back it). Skips the test where the kernel has no transparent huge pages at all.
inline bool advised_huge(const void* p) {
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled"))
    skip_test("this kernel has no transparent huge pages (no /sys/kernel/mm/transparent_hugepage)");
  std::ifstream smaps("/proc/self/smaps");
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long long lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = addr >= lo && addr < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return (line + " ").find(" hg ") != std::string::npos;
  }
  return false;
}

}  // namespace mnistctl::test

using mnistctl_test_AssertionCounter = mnistctl::test::AssertionCounter;  // the macro needs a plain name
CATCH_REGISTER_LISTENER(mnistctl_test_AssertionCounter)
