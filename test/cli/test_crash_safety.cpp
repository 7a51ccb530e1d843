// Crash safety through the binary: `mnistctl train` is killed with SIGKILL at random moments
// (at least 5, some of them while a checkpoint is being written), resumed each time, and
// must end with predictions byte-identical to those of an uninterrupted run. While each
// child runs, every checkpoint in the run folder is loaded again whenever it changes: at no
// moment may a reader find a truncated or corrupt one.
//
// The moments come from a seeded generator; the seed is printed (MNISTCTL_TEST_SEED sets it
// to replay a failure). Kills "during a checkpoint write" use the test-only hook
// MNISTCTL_TEST_WRITE_DELAY_MS of write_file_atomic (lib/core/fs.cpp), which holds the
// finished temporary file for that long before the rename, so the kill lands between them.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "cli/run_files.h"
#include "config/config.h"
#include "data/idx.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

constexpr int kEpochs = 3;
constexpr int kKills = 5;
constexpr int kWriteDelayMs = 150;

// The first `n` test images as a raw IDX file, for predict --input.
std::string write_test_slice(const std::string& mnist, const std::string& dir, int64_t n) {
  IdxImages im = read_idx_images(mnist + "/t10k-images-idx3-ubyte.gz");
  REQUIRE(im.count >= n);
  std::string path = dir + "/slice-idx3-ubyte";
  std::ofstream out(path, std::ios::binary);
  auto be32 = [&](uint32_t v) {
    const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    out.write(b, 4);
  };
  be32(0x803), be32(uint32_t(n)), be32(uint32_t(im.rows)), be32(uint32_t(im.cols));
  out.write(reinterpret_cast<const char*>(im.pixels.data()), n * im.rows * im.cols);
  return path;
}

std::vector<std::string> train_args(const std::string& cfg, const std::string& root, const std::string& out,
                                    bool resume) {
  if (resume) return {"train", "--out", out, "--resume", "--data-dir", root, "--threads", "2"};
  return {"train", "--config", cfg, "--data-dir", root, "--out", out, "--epochs", std::to_string(kEpochs),
          "--threads", "2", "--set", "data.train_limit=640", "--set", "data.test_limit=200"};
}

// A child mnistctl with stdout and stderr in files, so the parent can poll freely.
pid_t spawn(const std::vector<std::string>& args, const std::string& log, const std::string& env) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    if (!f || dup2(fileno(stdout), 2) < 0) _exit(126);
    if (!env.empty()) putenv(const_cast<char*>(env.c_str()));
    exec_program(MNISTCTL_EXE, args);
  }
  return pid;
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// Loads every checkpoint in the run folder that is new or changed since the last look.
// A file that vanishes between the listing and the read (a fresh run clearing the folder)
// is no failure; one that is there and does not load is.
struct CheckpointWatch {
  std::string dir;
  std::map<std::string, std::tuple<ino_t, off_t, int64_t>> seen;
  int loads = 0, polls = 0;

  void poll() {
    ++polls;
    std::vector<std::string> files;
    std::error_code ec;
    if (fs::exists(dir + "/last.ckpt", ec)) files.push_back(dir + "/last.ckpt");
    for (const auto& e : fs::directory_iterator(dir + "/checkpoints", ec))
      if (e.path().extension() == ".ckpt") files.push_back(e.path().string());
    for (const auto& f : files) {
      struct stat st;
      if (::stat(f.c_str(), &st) != 0) continue;
      auto key = std::make_tuple(st.st_ino, st.st_size, int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
      if (seen.count(f) && seen[f] == key) continue;
      try {
        Checkpoint c = load_checkpoint(f);
        (void)load_config_text(c.config_yaml, f + " (embedded config)");
        ++loads;
        seen[f] = key;
      } catch (const std::exception& e) {
        if (!fs::exists(f, ec)) continue;
        FAIL("a checkpoint on disk does not load: " << e.what());
      }
    }
  }

  int tmp_ckpts() const {  // *.ckpt.tmp.<pid>: checkpoint writes in progress or left by a kill
    int n = 0;
    std::error_code ec;
    for (const char* sub : {"", "/checkpoints"})
      for (const auto& e : fs::directory_iterator(dir + sub, ec))
        if (e.path().filename().string().find(".ckpt.tmp.") != std::string::npos) ++n;
    return n;
  }
  std::set<std::string> tmp_names() const {
    std::set<std::string> names;
    std::error_code ec;
    for (const char* sub : {"", "/checkpoints"})
      for (const auto& e : fs::directory_iterator(dir + sub, ec))
        if (e.path().filename().string().find(".ckpt.tmp.") != std::string::npos) names.insert(e.path().string());
    return names;
  }
};

// The last finished epoch recorded in last.ckpt (0 when there is none).
int finished_epochs(const std::string& run) {
  if (!fs::exists(run + "/last.ckpt")) return 0;
  Checkpoint c = load_checkpoint(run + "/last.ckpt");
  return static_cast<int>(c.meta_int("epoch", run));
}

}  // namespace

TEST_CASE("train killed with SIGKILL at random moments resumes to the same predictions") {
  const std::string mnist = mnist_dir();
  if (mnist.empty()) missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
  const std::string base = scratch_dir("crash-safety");
  const std::string root = base + "/data";
  fs::create_directories(root);
  fs::create_directory_symlink(fs::absolute(mnist), root + "/mnist");
  const std::string cfg = write_conv_dropout_config(base, 16, "0.2", 2);  // test_cli's resume recipe, logged often
  const std::string slice = write_test_slice(mnist, base, 300);

  uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  if (const char* s = std::getenv("MNISTCTL_TEST_SEED"); s && *s) seed = std::stoull(s);
  std::printf("crash-safety: seed %llu (MNISTCTL_TEST_SEED=%llu replays these moments)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  std::mt19937_64 rng(seed);

  // The uninterrupted run: its predictions, and how many progress lines an epoch prints.
  const std::string ref = base + "/ref";
  RunResult r = run_mnistctl(train_args(cfg, root, ref, false));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  const int lines_per_epoch = count_of(r.out, "Epoch[") / kEpochs;
  REQUIRE(lines_per_epoch >= 2);
  RunResult ref_pred = run_mnistctl({"predict", "--model", ref, "--input", slice, "--threads", "2"});
  REQUIRE(ref_pred.code == 0);
  REQUIRE(count_of(ref_pred.out, "\n") == 301);

  const std::string run = base + "/killed";
  const std::string delay_env = "MNISTCTL_TEST_WRITE_DELAY_MS=" + std::to_string(kWriteDelayMs);
  CheckpointWatch watch{run, {}, 0, 0};
  int kills = 0, kills_in_write = 0, attempts = 0;
  for (;; ++attempts) {
    REQUIRE(attempts < 20);
    int done = finished_epochs(run);
    if (done == kEpochs) {  // killed after its last write: the run is complete
      if (kills >= kKills) break;
      fs::remove_all(run);  // more moments to try: the same run again from the start
      done = 0;
    }
    const bool resume = done > 0;
    if (!resume) fs::remove_all(run);  // nothing to resume: start the run afresh
    const bool last_attempt = kills >= kKills;
    // Kills 2 and 4 wait for the k-th checkpoint write of this attempt (two per epoch: the
    // epoch file, then last.ckpt) and land inside it; kills 1, 3 and 5 wait for a random number of
    // progress lines plus up to 80 ms.
    const bool in_write = kills % 2 == 1;
    const int remaining = kEpochs - done;
    const int target_lines = std::uniform_int_distribution<int>(0, remaining * lines_per_epoch - 1)(rng);
    const int target_write = std::uniform_int_distribution<int>(1, 2 * remaining)(rng);
    const int extra_ms = std::uniform_int_distribution<int>(0, 80)(rng);
    const std::string log = base + "/attempt-" + std::to_string(attempts) + ".log";
    pid_t pid = spawn(train_args(cfg, root, run, resume), log, delay_env);
    REQUIRE(pid > 0);
    std::set<std::string> writes_seen = watch.tmp_names();  // leftovers of earlier kills
    const size_t leftovers = writes_seen.size();
    bool killed = false;
    auto armed_at = std::chrono::steady_clock::time_point::max();
    int status = 0;
    for (;;) {
      watch.poll();
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      if (!last_attempt && !killed) {
        if (in_write) {
          for (const auto& n : watch.tmp_names()) writes_seen.insert(n);
          if (static_cast<int>(writes_seen.size() - leftovers) >= target_write) {
            kill(pid, SIGKILL);
            killed = true;
          }
        } else if (armed_at == std::chrono::steady_clock::time_point::max()) {
          if (count_of(read_text(log), "Epoch[") > target_lines)
            armed_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(extra_ms);
        } else if (std::chrono::steady_clock::now() >= armed_at) {
          kill(pid, SIGKILL);
          killed = true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    watch.poll();
    const std::string out = read_text(log);
    if (killed) {
      INFO(out);
      REQUIRE(WIFSIGNALED(status));
      REQUIRE(WTERMSIG(status) == SIGKILL);
      ++kills;
      kills_in_write += in_write;
      std::printf("crash-safety: kill %d (%s) after %d finished epochs; last.ckpt now at epoch %d\n", kills,
                  in_write ? "during a checkpoint write" : "mid-run", done, finished_epochs(run));
      std::fflush(stdout);
      continue;
    }
    INFO(out);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    if (last_attempt) {
      ++attempts;
      break;
    }
    // Finished before the planned moment came (it can only be the run's very end): plan again.
  }
  std::printf("crash-safety: %d kills (%d during a checkpoint write), %d attempts, %d checkpoint loads in %d polls, "
              "%d temporary files left by kills\n",
              kills, kills_in_write, attempts, watch.loads, watch.polls, watch.tmp_ckpts());
  CHECK(kills >= kKills);
  CHECK(kills_in_write >= 2);
  CHECK(watch.loads > 0);
  CHECK(finished_epochs(run) == kEpochs);

  RunResult pred = run_mnistctl({"predict", "--model", run, "--input", slice, "--threads", "2"});
  REQUIRE(pred.code == 0);
  CHECK(pred.out == ref_pred.out);  // byte for byte
}

TEST_CASE("predict --output stopped by Ctrl-C or SIGTERM leaves no temporary file and no output") {
  skip_without_mnist();
  const std::string root = data_root("crash-predict-data");
  const std::string base = scratch_dir("crash-predict");
  const std::string run = base + "/run";
  RunResult t = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out", run,
                              "--epochs", "1", "--threads", "2", "--set", "data.train_limit=500", "--set",
                              "data.test_limit=200", "--set", "train.log_interval=0"});
  INFO(t.out << t.err);
  REQUIRE(t.code == 0);
  // The write-delay hook holds the finished temporary file before its rename: the signal
  // lands while it exists.
  for (int sig : {SIGINT, SIGTERM}) {
    const std::string out = base + "/probs-" + std::to_string(sig) + ".csv";
    const std::string log = base + "/predict-" + std::to_string(sig) + ".log";
    pid_t pid = spawn({"predict", "--model", run, "--data-dir", root, "--threads", "2", "--output", out}, log,
                      "MNISTCTL_TEST_WRITE_DELAY_MS=10000");
    REQUIRE(pid > 0);
    const std::string tmp = out + ".tmp." + std::to_string(pid);
    bool seen = false;
    int status = 0;
    for (int i = 0; i < 2000 && !seen; ++i) {  // up to 10 s for predict to start writing
      seen = fs::exists(tmp);
      if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (seen) kill(pid, sig);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    INFO(read_text(log));
    REQUIRE(seen);
    CHECK(WIFSIGNALED(status));
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == sig));  // ended by the signal, as before
    CHECK(!fs::exists(tmp));
    CHECK(!fs::exists(out));
  }
}
