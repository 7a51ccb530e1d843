// GPU backend tests that need no GPU: how a GPU context is refused where none is usable
// (one line, exit code 2, saying what was found), malformed contexts, the module path
// override, and that the CPU path never loads a CUDA library (not linked into mnistctl,
// not mapped by a CPU run, not opened by `mnistctl train --dry-run`).
// On a machine with a GPU the same tests check the other side: make_backend("gpu") works
// and names the device, and a device index past the last is refused.
// The GPU backend's numbers are checked by test/backend/test_backend_ops (parity with ref).
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <elf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "test_util.h"
#include "usage_error.h"

using namespace mnistctl;
namespace fs = std::filesystem;

namespace {

// The mnistctl executable and the source tree: the build's, unless the environment names
// others (scripts/gpu-check.sh runs these tests from a relocated bundle).
std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
const std::string kExe = env_or("MNISTCTL_TEST_EXE", MNISTCTL_EXE);
const std::string kSourceDir = env_or("MNISTCTL_TEST_SOURCE_DIR", MNISTCTL_SOURCE_DIR);

bool is_cuda_lib(const std::string& name) {
  std::string base = fs::path(name).filename().string();
  return base.rfind("libcud", 0) == 0 || base.rfind("libcublas", 0) == 0;  // libcuda, libcudart, libcudnn
}

// make_backend(ctx) must fail with a UsageError of one line; returns its message.
std::string usage_error_of(const std::string& ctx) {
  INFO("ctx " << ctx);
  const std::string msg = test::usage_error_from([&] { make_backend(ctx); }, "make_backend(\"" + ctx + "\")");
  INFO(msg);
  CHECK(!msg.empty());
  CHECK(msg.find('\n') == std::string::npos);
  return msg;
}

// Sets an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(const std::string& n, const std::string& value) : name(n) { setenv(n.c_str(), value.c_str(), 1); }
  ~ScopedEnv() { unsetenv(name.c_str()); }
};

// The DT_NEEDED entries of an ELF64 file, read from its dynamic section.
std::vector<std::string> elf_needed(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  std::vector<char> f((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(f.size() >= sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh;
  std::memcpy(&eh, f.data(), sizeof eh);
  REQUIRE(std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0);
  REQUIRE(eh.e_ident[EI_CLASS] == ELFCLASS64);
  REQUIRE(eh.e_shoff + uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) <= f.size());
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  std::memcpy(sh.data(), f.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
  std::vector<std::string> needed;
  for (const auto& s : sh) {
    if (s.sh_type != SHT_DYNAMIC) continue;
    REQUIRE(s.sh_link < sh.size());
    const Elf64_Shdr& str = sh[s.sh_link];
    REQUIRE(s.sh_offset + s.sh_size <= f.size());
    REQUIRE(str.sh_offset + str.sh_size <= f.size());
    for (uint64_t off = 0; off + sizeof(Elf64_Dyn) <= s.sh_size; off += sizeof(Elf64_Dyn)) {
      Elf64_Dyn d;
      std::memcpy(&d, f.data() + s.sh_offset + off, sizeof d);
      if (d.d_tag == DT_NULL) break;
      if (d.d_tag == DT_NEEDED && d.d_un.d_val < str.sh_size)
        needed.emplace_back(f.data() + str.sh_offset + d.d_un.d_val);
    }
  }
  return needed;
}

// The CUDA libraries mapped into this process, from /proc/self/maps.
std::vector<std::string> mapped_cuda_libs() {
  std::ifstream maps("/proc/self/maps");
  REQUIRE(maps);
  std::vector<std::string> found;
  std::string line;
  while (std::getline(maps, line)) {
    size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (is_cuda_lib(path) && std::find(found.begin(), found.end(), path) == found.end()) found.push_back(path);
  }
  return found;
}

struct Run {
  int code = -1;
  std::string out, err;
};

// Runs a shell command line with stdout and stderr captured separately.
Run run(const std::string& cmd, const std::string& scratch) {
  std::string out = scratch + "/stdout.txt", err = scratch + "/stderr.txt";
  std::string full = cmd + " >'" + out + "' 2>'" + err + "' </dev/null";
  int status = std::system(full.c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = test::read_text(out);
  r.err = test::read_text(err);
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  if (!s.empty() && s.back() != '\n') ++n;
  return n;
}


// Whether the dynamic loader finds a libcuda.so.1 (the NVIDIA driver's library) for this
// process: decides which refusal make_backend("gpu") must give.
bool driver_loadable() {
  void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!h) return false;
  dlclose(h);
  return true;
}

// Whether make_backend("gpu") works here; the reason when it does not.
bool gpu_usable(std::string* why = nullptr) {
  try {
    make_backend("gpu");
    return true;
  } catch (const Error& e) {
    if (why) *why = e.what();
    return false;
  }
}

}  // namespace

TEST_CASE("malformed contexts are usage errors", "[gpu][ctx]") {
  for (const char* ctx : {"gpu:x", "tpu", "gpu:", "gpu:-1", "GPU", "gpu:1x", "gpu:123456789", "cpu:0", ""}) {
    std::string msg = usage_error_of(ctx);
    std::printf("%-16s -> %s\n", (std::string("'") + ctx + "'").c_str(), msg.c_str());
    CHECK(msg.find(std::string("--ctx ") + ctx) != std::string::npos);
  }
}

TEST_CASE("asking for a GPU gives a backend or one line that says why not", "[gpu][ctx]") {
  std::string why;
  bool usable = gpu_usable(&why);
  if (!MNISTCTL_HAVE_CUDA) {
    REQUIRE_FALSE(usable);
    std::printf("gpu -> %s\n", why.c_str());
    CHECK(why.find("without the CUDA backend") != std::string::npos);
    return;
  }
  if (usable) {
    auto b = make_backend("gpu");
    std::printf("gpu -> %s\n", b->name().c_str());
    CHECK(b->name().rfind("gpu:0 (", 0) == 0);
    std::string msg = usage_error_of("gpu:99");
    std::printf("gpu:99 -> %s\n", msg.c_str());
    CHECK(msg.find("gpu:99 does not exist: ") != std::string::npos);
    CHECK(msg.find(" CUDA device") != std::string::npos);
    return;
  }
  // No usable GPU here: every context is refused with one reason that does not contradict
  // itself. Without a driver library that is all it says (no CUDA error string: cudart's
  // "driver version is insufficient" would suggest an old driver, not a missing one).
  const bool driver = driver_loadable();
  std::printf("libcuda.so.1 %s\n", driver ? "loads" : "is not loadable");
  for (const char* ctx : {"gpu", "gpu:1", "gpu:7"}) {
    std::string msg = usage_error_of(ctx);
    std::printf("%-6s -> %s\n", ctx, msg.c_str());
    const std::string head = std::string("--ctx ") + ctx + ": ";
    CHECK(msg.rfind(head, 0) == 0);
    if (msg.find("cannot load the CUDA backend: ") != std::string::npos) continue;  // module itself
    if (!driver) {
      CHECK(msg == head + "no usable CUDA device: no NVIDIA driver found (libcuda.so.1 is not loadable)");
      continue;
    }
    // A driver library, but no usable device: the CUDA error string and its name, or the
    // device count when the index is past the last device.
    CHECK(msg.find("no NVIDIA driver found") == std::string::npos);
    bool says_what = (msg.find("no usable CUDA device: ") != std::string::npos &&
                      msg.find(" (cudaError") != std::string::npos) ||
                     msg.find("does not exist: ") != std::string::npos;
    CHECK(says_what);
  }
}

#if MNISTCTL_HAVE_CUDA  // the next tests load the CUDA module: a build without it has none

// Runs in a fresh process (started by the test below) whose LD_LIBRARY_PATH puts the CUDA
// toolkit's stub libcuda.so.1 first: a driver library that loads but cannot count devices.
TEST_CASE("stub driver child", "[.][stub-driver-child]") {
  std::string why;
  if (gpu_usable(&why)) test::skip_test("the real driver was loaded instead of the stub");
  REQUIRE(driver_loadable());
  for (const char* ctx : {"gpu", "gpu:7"}) {
    std::string msg = usage_error_of(ctx);
    std::printf("stub driver, %-6s -> %s\n", ctx, msg.c_str());
    CHECK(msg.rfind(std::string("--ctx ") + ctx + ": no usable CUDA device: ", 0) == 0);
    CHECK(msg.find("no NVIDIA driver found") == std::string::npos);
    CHECK(msg.find(" (cudaError") != std::string::npos);  // the CUDA error's name
  }
}

TEST_CASE("a driver library that cannot count devices is reported by its CUDA error", "[gpu][ctx]") {
  const std::string stub = MNISTCTL_CUDA_DRIVER_STUB;
  if (stub.empty() || !fs::exists(stub))
    test::missing_test_data("the CUDA toolkit's stub libcuda.so was not found at configure time");
  std::string dir = test::scratch_dir("gpu-stub-driver");
  fs::create_symlink(stub, dir + "/libcuda.so.1");
  const char* old = std::getenv("LD_LIBRARY_PATH");
  std::string path = dir + (old && *old ? std::string(":") + old : "");
  std::string self = fs::read_symlink("/proc/self/exe").string();
  Run r = run("LD_LIBRARY_PATH='" + path + "' '" + self + "' '[stub-driver-child]'", dir);
  std::printf("%s", r.out.c_str());
  // A machine with a GPU loads its real driver whatever LD_LIBRARY_PATH says.
  if (r.code == test::kSkipReturnCode) test::skip_test("the real driver was loaded instead of the stub");
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.out.find("All tests passed") != std::string::npos);
}

TEST_CASE("MNISTCTL_CUDA_MODULE naming a missing or broken file is reported by name", "[gpu][ctx]") {
  std::string dir = test::scratch_dir("gpu-module-env");
  {
    std::string missing = dir + "/no-such-dir/libmnistctl_cuda.so";
    ScopedEnv env("MNISTCTL_CUDA_MODULE", missing);
    std::string msg = usage_error_of("gpu");
    std::printf("missing module -> %s\n", msg.c_str());
    CHECK(msg.find(missing) != std::string::npos);
    CHECK(msg.find("cannot load the CUDA backend") != std::string::npos);
  }
  {
    std::string junk = dir + "/not-a-library.so";
    std::ofstream(junk) << "this is not an ELF file\n";
    ScopedEnv env("MNISTCTL_CUDA_MODULE", junk);
    std::string msg = usage_error_of("gpu");
    std::printf("broken module -> %s\n", msg.c_str());
    CHECK(msg.find(junk) != std::string::npos);
  }
}

#endif  // MNISTCTL_HAVE_CUDA

TEST_CASE("the mnistctl executable links no CUDA library", "[gpu][cpu]") {
  std::vector<std::string> needed = elf_needed(kExe);
  std::string list;
  for (const auto& n : needed) list += n + " ";
  std::printf("mnistctl NEEDED: %s\n", list.c_str());
  REQUIRE(!needed.empty());  // the parser works: it links libc at least
  for (const auto& n : needed) {
    INFO(n);
    CHECK_FALSE(is_cuda_lib(n));
  }
  if (MNISTCTL_HAVE_CUDA) {
    // ...while the module beside it does (the same check, seen failing).
    std::string module = (fs::path(kExe).parent_path() / "libmnistctl_cuda.so").string();
    REQUIRE(fs::exists(module));
    bool any = false;
    for (const auto& n : elf_needed(module)) any = any || is_cuda_lib(n);
    CHECK(any);
  }
}

// Runs in a fresh process (the test below starts it), so that no earlier test of this
// executable has loaded the CUDA module yet.
TEST_CASE("cpu run maps no CUDA library (child process)", "[.][cpu-maps-child]") {
  auto b = make_backend("cpu");
  FcDesc d;
  d.n = 4, d.in = 8, d.out = 3;
  Tensor x = b->zeros({4, 8}), w = b->zeros({3, 8}), bias = b->zeros({3}), y = b->empty({4, 3});
  b->fc_forward(d, x, w, &bias, y);
  Tensor probs = b->empty({4, 3}), labels = b->zeros({4}), metrics = b->zeros({kMetricSlots});
  b->softmax_xent_forward(y, labels, probs, &metrics);
  b->synchronize();
  std::vector<std::string> libs = mapped_cuda_libs();
  for (const auto& l : libs) std::printf("mapped: %s\n", l.c_str());
  CHECK(libs.empty());
  if (MNISTCTL_HAVE_CUDA) {
    // Control: asking for the GPU maps cudart & co. (where the module loads at all), so
    // the scan above would have seen them.
    std::string why;
    gpu_usable(&why);
    if (why.find("cannot load the CUDA backend") == std::string::npos) CHECK(!mapped_cuda_libs().empty());
  }
}

TEST_CASE("a cpu run maps no CUDA library", "[gpu][cpu]") {
  std::string self = fs::read_symlink("/proc/self/exe").string();
  Run r = run("'" + self + "' '[cpu-maps-child]'", test::scratch_dir("gpu-maps"));
  std::printf("%s", r.out.c_str());
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.out.find("All tests passed") != std::string::npos);
}

TEST_CASE("mnistctl train --dry-run opens no CUDA library", "[gpu][cli]") {
  std::string cfg = test::config_file("mlp.yaml", kSourceDir);
  Run r = run("LD_DEBUG=libs '" + kExe + "' train --dry-run --config '" + cfg + "'",
              test::scratch_dir("gpu-dry-run"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  // LD_DEBUG=libs lists every library the loader looks for and initialises.
  REQUIRE(r.err.find("calling init:") != std::string::npos);
  std::istringstream lines(r.err);
  std::string line;
  int cuda_lines = 0;
  while (std::getline(lines, line))
    if (line.find("libcud") != std::string::npos || line.find("libcublas") != std::string::npos) {
      std::printf("CUDA library seen: %s\n", line.c_str());
      ++cuda_lines;
    }
  CHECK(cuda_lines == 0);
}

TEST_CASE("mnistctl train on an absent GPU exits 2 with one line", "[gpu][cli]") {
  std::string mnist = test::mnist_dir();
  if (mnist.empty()) test::missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
  std::string scratch = test::scratch_dir("gpu-train-ctx");
  // train reads <data-dir>/mnist/.
  fs::create_directories(scratch + "/data");
  fs::create_directory_symlink(mnist, scratch + "/data/mnist");
  std::vector<std::string> ctxs = {"gpu:99"};  // absent on every machine
  if (!gpu_usable()) ctxs.push_back("gpu");
  for (const auto& ctx : ctxs) {
    Run r = run("'" + kExe + "' train --config '" + test::config_file("lenet.yaml", kSourceDir) +
                    "' --epochs 1 --set data.train_limit=200 --ctx " + ctx +
                    " --data-dir '" + scratch + "/data' --out '" + scratch + "/run'",
                scratch);
    std::printf("--ctx %s -> exit %d: %s", ctx.c_str(), r.code, r.err.c_str());
    INFO("--ctx " << ctx << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.code == kExitUsage);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.rfind("mnistctl: ", 0) == 0);
    CHECK(r.err.find("--ctx " + ctx) != std::string::npos);
  }
}
