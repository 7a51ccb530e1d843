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

// ---- step graphs (Backend::capture; train.cuda_graphs) --------------------------------------
namespace {

// A small training step that uses every per-step scalar of StepScalars: the batch gather
// (first), dropout (step), SGD with momentum (lr) and Adam (lr, adam_step), with a
// fully-connected layer and the fused softmax loss in between.
struct GraphRig {
  static constexpr int64_t kSamples = 64, kSize = 16, kBatch = 8, kClasses = 4;
  Backend& be;
  Buffer images, labels_u8, order;
  Tensor x, xd, mask, y, probs, dy, labels, metrics, w, b, dw, db, mom, m, v;
  StepScalars now;  // the scalars the step uses

  explicit GraphRig(Backend& backend) : be(backend) {
    std::vector<uint8_t> img(kSamples * kSize), lab(kSamples);
    std::vector<int32_t> ord(kSamples);
    uint32_t h = 12345;
    for (auto& p : img) p = static_cast<uint8_t>((h = h * 1664525u + 1013904223u) >> 24);
    for (int64_t i = 0; i < kSamples; ++i) lab[i] = static_cast<uint8_t>(i % kClasses);
    for (int64_t i = 0; i < kSamples; ++i) ord[i] = static_cast<int32_t>((i * 37) % kSamples);  // a permutation
    images = be.alloc_bytes(img.size());
    be.upload_bytes(images, img.data(), img.size());
    labels_u8 = be.alloc_bytes(lab.size());
    be.upload_bytes(labels_u8, lab.data(), lab.size());
    order = be.alloc_bytes(ord.size() * sizeof(int32_t));
    be.upload_bytes(order, ord.data(), ord.size() * sizeof(int32_t));
    x = be.empty({kBatch, kSize});
    xd = be.empty({kBatch, kSize});
    mask = be.empty({kBatch, kSize});
    y = be.empty({kBatch, kClasses});
    probs = be.empty({kBatch, kClasses});
    dy = be.empty({kBatch, kClasses});
    labels = be.empty({kBatch});
    metrics = be.empty({kMetricSlots});
    w = be.empty({kClasses, kSize});
    b = be.empty({kClasses});
    dw = be.empty({kClasses, kSize});
    db = be.empty({kClasses});
    mom = be.empty({kClasses, kSize});
    m = be.empty({kClasses});
    v = be.empty({kClasses});
  }
  // The same starting point for every run.
  void reset() {
    std::vector<float> w0(static_cast<size_t>(w.numel()));
    for (size_t i = 0; i < w0.size(); ++i) w0[i] = 0.01f * static_cast<float>(static_cast<int>(i % 7) - 3);
    be.upload(w, w0.data());
    be.fill(b, 0.0f);
    for (Tensor* t : {&mom, &m, &v, &metrics}) be.fill(*t, 0.0f);
  }
  static StepScalars scalars(int64_t k) {  // every field changes from step to step
    StepScalars s;
    s.first = (k * kBatch) % kSamples;
    s.step = static_cast<uint64_t>(k);
    s.lr = 0.05f * static_cast<float>(1 + k % 3);
    s.adam_step = k + 1;
    return s;
  }
  void step() {
    FcDesc d;
    d.n = kBatch, d.in = kSize, d.out = kClasses;
    be.gather_batch(images, labels_u8, kSize, order, now.first, kBatch, x, labels);
    be.dropout_forward_step(0.25f, 99, now.step, static_cast<uint64_t>(kBatch * kSize), 0, x, xd, mask);
    be.fc_forward(d, xd, w, &b, y);
    be.softmax_xent_forward(y, labels, probs, &metrics);
    be.softmax_xent_backward(probs, labels, 1.0f / kBatch, dy);
    be.fc_backward_weights(d, xd, dy, dw, &db);
    be.sgd_update(w, dw, &mom, now.lr, 0.9f, 1e-4f);
    be.adam_update(b, db, m, v, now.lr, 0.9f, 0.999f, 1e-8f, 0.0f, now.adam_step);
  }
  std::vector<float> get(const Tensor& t) {
    std::vector<float> out(static_cast<size_t>(t.numel()));
    be.download(t, out.data());
    return out;
  }
  // Everything the steps leave behind, in one list.
  std::vector<std::vector<float>> state() { return {get(w), get(b), get(mom), get(m), get(v), get(metrics), get(x), get(mask)}; }
};

}  // namespace

TEST_CASE("a captured step replayed with new scalars computes what eager steps compute, bit for bit",
          "[gpu][graphs]") {
  std::string why;
  if (!gpu_usable(&why)) test::skip_test("no usable GPU here: " + why);
  auto be = make_backend("gpu");
  REQUIRE(be->supports_graphs());
  GraphRig rig(*be);
  const int64_t kSteps = 12;  // more than one pass over the 8 batches of the order list

  rig.reset();
  for (int64_t k = 0; k < kSteps; ++k) {
    rig.now = GraphRig::scalars(k);
    rig.step();
  }
  const auto eager = rig.state();

  rig.reset();
  rig.now = GraphRig::scalars(0);
  rig.step();  // one eager step first, as the trainer does: scratch memory settles
  const auto after_one = rig.state();
  rig.now = GraphRig::scalars(1);
  std::unique_ptr<StepGraph> g = be->capture(rig.now, [&] { rig.step(); }, &why);
  INFO("capture: " << why);
  REQUIRE(g);
  CHECK(rig.state() == after_one);  // capturing ran nothing
  for (int64_t k = 1; k < kSteps; ++k) g->replay(GraphRig::scalars(k));
  const auto replayed = rig.state();

  REQUIRE(replayed.size() == eager.size());
  for (size_t i = 0; i < eager.size(); ++i) {
    INFO("state tensor " << i);
    CHECK(replayed[i] == eager[i]);  // exact: float == is false for NaN, so a NaN fails too
  }
  CHECK(eager[0] != after_one[0]);  // the steps did change the weights
  // A batch start past the order list is refused on the host (the kernel could not check it).
  StepScalars bad = GraphRig::scalars(3);
  bad.first = GraphRig::kSamples - GraphRig::kBatch + 1;
  CHECK_THROWS_AS(g->replay(bad), Error);
  bad.first = -1;
  CHECK_THROWS_AS(g->replay(bad), Error);
}

TEST_CASE("a capture that would freeze a changing scalar or leave the stream is refused", "[gpu][graphs]") {
  std::string why;
  if (!gpu_usable(&why)) test::skip_test("no usable GPU here: " + why);
  auto be = make_backend("gpu");
  GraphRig rig(*be);
  rig.reset();
  rig.now = GraphRig::scalars(0);
  rig.step();
  // The step uses another learning rate, or dropout another step, than the capture is told of.
  rig.now = GraphRig::scalars(1);
  rig.now.lr *= 2.0f;
  why.clear();
  CHECK(be->capture(GraphRig::scalars(1), [&] { rig.step(); }, &why) == nullptr);
  CHECK(why.find("sgd_update's lr") != std::string::npos);
  rig.now = GraphRig::scalars(1);
  rig.now.step += 1;
  why.clear();
  CHECK(be->capture(GraphRig::scalars(1), [&] { rig.step(); }, &why) == nullptr);
  CHECK(why.find("dropout's step") != std::string::npos);
  // A host copy inside the step.
  rig.now = GraphRig::scalars(1);
  why.clear();
  CHECK(be->capture(rig.now, [&] { rig.step(); rig.get(rig.w); }, &why) == nullptr);
  CHECK(why.find("download cannot be part of a captured step") != std::string::npos);
  // The backend works eagerly after both.
  const auto before = rig.get(rig.w);
  rig.step();
  CHECK(rig.get(rig.w) != before);
}

namespace {

// The tensor records of a checkpoint file (parameters, optimizer state), as bytes: what is
// left after the header (magic, version, record count) and the config and meta text
// records, without the trailing CRC (docs/checkpoint.md). The text records differ between
// runs (the config's train.cuda_graphs, the measured training time).
std::string checkpoint_tensors(const std::string& path) {
  std::string b = test::read_text(path);
  size_t at = 16;
  for (int rec = 0; rec < 2; ++rec) {
    uint32_t name_len = 0;
    uint64_t size = 0;
    REQUIRE(at + 8 <= b.size());
    std::memcpy(&name_len, b.data() + at + 4, 4);
    at += 8 + name_len;
    REQUIRE(at + 8 <= b.size());
    std::memcpy(&size, b.data() + at, 8);
    at += 8 + size;
  }
  REQUIRE(at + 4 < b.size());
  return b.substr(at, b.size() - 4 - at);
}

}  // namespace

TEST_CASE("mnistctl train --set train.cuda_graphs=true gives the weights of the eager run", "[gpu][graphs][cli]") {
  std::string why;
  if (!gpu_usable(&why)) test::skip_test("no usable GPU here: " + why);
  std::string mnist = test::mnist_dir();
  if (mnist.empty()) test::missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
  std::string scratch = test::scratch_dir("gpu-graphs-train");
  fs::create_directories(scratch + "/data");
  fs::create_directory_symlink(mnist, scratch + "/data/mnist");
  // Dropout (its step from the replay's scalars), a smaller last batch in training (1000 =
  // 15 x 64 + 40) and in validation (300 = 4 x 64 + 44), SGD with momentum and Adam, and a
  // learning rate halved after epoch 1 (the trainer's lr through the replays' scalars).
  std::ofstream(scratch + "/net.yaml")
      << "name: graphs\nnetwork:\n  layers:\n"
         "    - {type: convolution, kernel: 5, num_filter: 8}\n    - {type: activation, act_type: relu}\n"
         "    - {type: pooling, kernel: 2, stride: 2}\n    - {type: flatten}\n"
         "    - {type: fully_connected, num_hidden: 64}\n    - {type: activation, act_type: tanh}\n"
         "    - {type: dropout, p: 0.3}\n    - {type: fully_connected, num_hidden: 10}\n"
         "    - {type: softmax_output}\ninit: {type: xavier}\ntrain: {batch_size: 64, momentum: 0.9}\n";
  for (const char* opt : {"sgd", "adam"}) {
    auto train = [&](const std::string& graphs) {
      std::string out = scratch + "/" + opt + "-" + graphs;
      return run("'" + kExe + "' train --config '" + scratch + "/net.yaml' --ctx gpu --deterministic --epochs 2 " +
                     "--set data.train_limit=1000 --set data.test_limit=300 --set train.optimizer=" + opt +
                     " --set train.learning_rate=0.01 --set train.lr_schedule.type=step"
                     " --set train.lr_schedule.factor=0.5 --set train.cuda_graphs=" + graphs + " --data-dir '" + scratch +
                     "/data' --out '" + out + "'",
                 scratch);
    };
    Run eager = train("false");
    Run graphs = train("true");
    INFO(opt << "\neager: " << eager.out << eager.err << "\ngraphs: " << graphs.out << graphs.err);
    REQUIRE(eager.code == 0);
    REQUIRE(graphs.code == 0);
    CHECK(graphs.out.find("replayed from CUDA graphs") != std::string::npos);
    CHECK(graphs.out.find("warning") == std::string::npos);
    const std::string a = checkpoint_tensors(scratch + "/" + opt + "-false/last.ckpt");
    const std::string b = checkpoint_tensors(scratch + "/" + opt + "-true/last.ckpt");
    CHECK(a.size() > 100000);
    CHECK(a == b);  // byte for byte
    // The metrics too: training sums from the training graph, validation from its own graph.
    auto epochs = [&](const std::string& graphs) {
      std::string kept;
      std::ifstream in(scratch + "/" + opt + "-" + graphs + "/metrics.jsonl");
      for (std::string l; std::getline(in, l);) {
        if (l.find("\"type\":\"epoch\"") == std::string::npos) continue;
        for (const char* key : {"\"train_accuracy\":", "\"loss\":", "\"val_accuracy\":", "\"val_loss\":", "\"lr\":"}) {
          const size_t at = l.find(key);
          REQUIRE(at != std::string::npos);
          kept += l.substr(at, l.find(',', at) - at) + " ";
        }
        kept += "\n";
      }
      return kept;
    };
    const std::string ea = epochs("false"), eb = epochs("true");
    INFO("eager epochs:\n" << ea << "graphs epochs:\n" << eb);
    CHECK(std::count(ea.begin(), ea.end(), '\n') == 2);
    CHECK(ea.find("\"lr\":0.005") != std::string::npos);  // epoch 2 at the halved rate
    CHECK(ea == eb);
  }
}
