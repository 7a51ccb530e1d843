// Bounds, durability and one writer, end to end through the binary: a checkpoint of a few
// hundred bytes that declares a huge network, an IDX pair whose counts disagree, and a
// config whose shapes overflow are refused quickly in little memory (the refusing child's
// peak RSS is measured); a full disk during a checkpoint write exits 3 and leaves the
// previous checkpoint loadable; a second train into a busy run folder is refused.
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

struct Limited {
  int code = -1;
  std::string err;
  long max_rss_kb = 0;
  double seconds = 0;
};

// Runs mnistctl with stdout/stderr to files, optionally under RLIMIT_FSIZE (SIGXFSZ ignored,
// so a write past it fails with EFBIG like a full disk); reports the child's own peak RSS.
Limited run_limited(const std::vector<std::string>& args, const std::string& dir, long fsize_limit = -1) {
  auto t0 = std::chrono::steady_clock::now();
  std::string err_path = dir + "/stderr.txt";
  pid_t pid = fork();
  if (pid == 0) {
    int out = ::open((dir + "/stdout.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    if (fsize_limit >= 0) {
      signal(SIGXFSZ, SIG_IGN);
      struct rlimit rl{static_cast<rlim_t>(fsize_limit), static_cast<rlim_t>(fsize_limit)};
      setrlimit(RLIMIT_FSIZE, &rl);
    }
    std::vector<char*> argv;
    std::string exe = MNISTCTL_EXE;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru{};
  wait4(pid, &status, 0, &ru);
  Limited r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_kb = ru.ru_maxrss;
  std::ifstream in(err_path);
  r.err.assign(std::istreambuf_iterator<char>(in), {});
  return r;
}

std::string data_root(const std::string& name) {
  std::string src = mnist_dir();
  if (src.empty()) return "";
  std::string root = scratch_dir(name);
  fs::create_directories(root + "/mnist");
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    fs::create_symlink(fs::absolute(fs::path(src) / f), fs::path(root) / "mnist" / f);
  return root;
}

#define REQUIRE_MNIST(root)                                                                 \
  if ((root).empty()) {                                                                     \
    WARN("SKIP: real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");  \
    if (std::getenv("CI")) FAIL("real MNIST is required when CI is set");                   \
    return;                                                                                 \
  }

std::vector<std::string> quick_mlp(const std::string& root, const std::string& out, int epochs) {
  return {"train", "--config", std::string(MNISTCTL_SOURCE_DIR) + "/configs/mlp.yaml", "--data-dir", root,
          "--out", out, "--epochs", std::to_string(epochs), "--threads", "1", "--set", "data.train_limit=2000",
          "--set", "data.test_limit=500"};
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("a checkpoint of a few hundred bytes that declares a huge network is refused fast and small") {
  std::string dir = scratch_dir("bounds-bomb");
  // 784 inputs x 1,000,000 hidden: 3.1 GB of weights declared, none present in the file.
  Checkpoint c;
  c.config_yaml =
      "name: bomb\nnetwork:\n  input: [1, 28, 28]\n  layers:\n"
      "    - {type: fully_connected, name: fc1, num_hidden: 1000000}\n"
      "    - {type: fully_connected, name: fc2, num_hidden: 10}\n    - {type: softmax_output}\n";
  c.meta = {{"epoch", "1"}, {"batch", "0"}, {"step", "1"}};
  std::string bytes = serialize_checkpoint(c);
  REQUIRE(bytes.size() < 400);
  std::string path = dir + "/bomb.ckpt";
  std::ofstream(path, std::ios::binary) << bytes;
  for (const char* cmd : {"eval", "predict"}) {
    std::vector<std::string> args{cmd, "--model", path, "--threads", "1"};
    if (std::string(cmd) == "predict") args.insert(args.end(), {"--input", path});
    Limited r = run_limited(args, dir);
    INFO(cmd << ": " << r.err << " rss " << r.max_rss_kb << " kB, " << r.seconds << " s");
    CHECK(r.code == 2);
    CHECK(r.err.find("bomb.ckpt") != std::string::npos);
    CHECK(r.err.find("fc1") != std::string::npos);
    CHECK(lines(r.err) == 1);
    CHECK(r.max_rss_kb < 200 * 1024);
    CHECK(r.seconds < 1.0);
  }
}

TEST_CASE("a checkpoint whose network fits its tensors but not the memory budget is refused before binding") {
  std::string dir = scratch_dir("bounds-budget");
  Checkpoint c;
  c.config_yaml =
      "name: wide\nnetwork:\n  input: [1, 28, 28]\n  layers:\n"
      "    - {type: fully_connected, name: fc1, num_hidden: 10}\n    - {type: softmax_output}\n";
  c.meta = {{"epoch", "1"}, {"batch", "0"}, {"step", "1"}};
  c.tensors.push_back({"param/fc1_weight", Shape{10, 784}, std::vector<float>(7840, 0.f)});
  c.tensors.push_back({"param/fc1_bias", Shape{10}, std::vector<float>(10, 0.f)});
  std::string path = dir + "/wide.ckpt";
  std::ofstream(path, std::ios::binary) << serialize_checkpoint(c);
  // 1 kB of budget: even this small network does not fit; the message names the budget.
  RunResult r = run_mnistctl({"eval", "--model", path}, {}, {"MNISTCTL_MEMORY_BUDGET_MB=0.001"});
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK(r.err.find("wide.ckpt") != std::string::npos);
  CHECK(r.err.find("budget") != std::string::npos);
}

TEST_CASE("shape arithmetic that overflows 64 bits is refused naming the layer") {
  std::string dir = scratch_dir("bounds-overflow");
  std::string cfg = dir + "/overflow.yaml";
  std::ofstream(cfg) << "name: overflow\nnetwork:\n  input: [1, 4096, 4096]\n  layers:\n"
                        "    - {type: convolution, name: c1, kernel: [1, 1], pad: [1024, 1024], num_filter: 65536}\n"
                        "    - {type: convolution, name: c2, kernel: [1, 1], pad: [1024, 1024], num_filter: 65536}\n"
                        "    - {type: convolution, name: c3, kernel: [1, 1], pad: [1024, 1024], num_filter: 65536}\n"
                        "    - {type: convolution, name: c4, kernel: [1, 1], pad: [1024, 1024], num_filter: 65536}\n"
                        "    - {type: fully_connected, name: fc, num_hidden: 1048576}\n"
                        "    - {type: softmax_output}\n";
  RunResult r = run_mnistctl({"train", "--config", cfg, "--dry-run"});
  INFO(r.out << r.err);
  CHECK(r.code == 2);
  CHECK(r.err.find("overflow.yaml:") == r.err.find("overflow.yaml"));
  CHECK(r.err.find("overflows 64 bits") != std::string::npos);
  CHECK(r.out.find("-") == std::string::npos);  // no negative counts printed
  CHECK(lines(r.err) == 1);
}

TEST_CASE("a full disk during a checkpoint write exits 3 in one line and keeps the previous checkpoint") {
  std::string root = data_root("bounds-efbig-data");
  REQUIRE_MNIST(root);
  std::string dir = scratch_dir("bounds-efbig");
  std::string out = dir + "/run";
  RunResult first = run_mnistctl(quick_mlp(root, out, 1));
  REQUIRE(first.code == 0);
  const auto before = fs::file_size(out + "/last.ckpt");
  std::ifstream in(out + "/last.ckpt", std::ios::binary);
  std::string old_bytes((std::istreambuf_iterator<char>(in)), {});
  // A resumed second epoch whose checkpoint cannot be written: the file-size limit is below
  // the checkpoint's size (~440 kB), above everything else the run writes.
  std::vector<std::string> resume = quick_mlp(root, out, 2);
  resume.push_back("--resume");
  Limited r = run_limited(resume, dir, static_cast<long>(before / 2));
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(lines(r.err) == 1);
  CHECK(r.err.find(".ckpt") != std::string::npos);
  CHECK(r.err.find("File too large") != std::string::npos);
  std::ifstream again(out + "/last.ckpt", std::ios::binary);
  std::string now_bytes((std::istreambuf_iterator<char>(again)), {});
  CHECK(now_bytes == old_bytes);
  CHECK_NOTHROW(load_checkpoint(out + "/last.ckpt"));
  for (const auto& e : fs::recursive_directory_iterator(out))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  RunResult ev = run_mnistctl({"eval", "--model", out, "--data-dir", root});
  CHECK(ev.code == 0);
}

TEST_CASE("a second train into a run folder in use is refused naming the first's process id") {
  std::string root = data_root("bounds-lock-data");
  REQUIRE_MNIST(root);
  std::string dir = scratch_dir("bounds-lock");
  std::string out = dir + "/run";
  std::vector<std::string> args = quick_mlp(root, out, 50);
  args.insert(args.end(), {"--set", "data.train_limit=60000", "--set", "train.log_interval=10"});
  pid_t first_pid = 0;
  RunResult second;
  bool started = false;
  // The first run is long (50 epochs); once it prints its first Batch line the lock is taken, so the second is started then, and the first is stopped afterwards.
  RunResult first = run_mnistctl(args, [&](const std::string& line, pid_t pid) {
    if (started || line.find("Batch[") == std::string::npos) return;
    started = true;
    first_pid = pid;
    second = run_mnistctl(quick_mlp(root, out, 1));
    kill(pid, SIGKILL);  // dies holding the lock: the kernel must release it
  });
  REQUIRE(started);
  INFO(second.err);
  CHECK(second.code == 2);
  CHECK(second.err.find("process " + std::to_string(first_pid)) != std::string::npos);
  CHECK(lines(second.err) == 1);
  CHECK(first.code == 128 + SIGKILL);
  // The kernel released the lock with the first process: a new run into the folder works.
  RunResult again = run_mnistctl(quick_mlp(root, out, 1));
  INFO(again.err);
  CHECK(again.code == 0);
}

TEST_CASE("output paths: a file as --out, --resume without a checkpoint, read-only outputs") {
  std::string dir = scratch_dir("bounds-outputs");
  std::string file = dir + "/plain-file";
  std::ofstream(file) << "x";
  RunResult dry = run_mnistctl({"train", "--out", file, "--dry-run"});
  INFO(dry.err);
  CHECK(dry.code == 2);
  CHECK(dry.err.find("is a file, expected a run folder") != std::string::npos);
  // Before data loads: a data root that does not exist is not what it complains about.
  RunResult real = run_mnistctl({"train", "--out", file, "--data-dir", dir + "/no-data"});
  CHECK(real.code == 2);
  CHECK(real.err.find("is a file, expected a run folder") != std::string::npos);

  fs::create_directories(dir + "/empty-run");
  RunResult res = run_mnistctl({"train", "--out", dir + "/empty-run", "--resume"});
  INFO(res.err);
  CHECK(res.code == 2);
  CHECK(res.err.find("has no checkpoint yet") != std::string::npos);
  CHECK(res.err.find("without --resume") != std::string::npos);
}
