// One writer per run folder and output paths, end to end through the binary: a second
// train into a busy run folder is refused naming the first; a file given as --out and a
// --resume before the first checkpoint are refused with what to do.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "core/error.h"
#include "core/fs.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> quick_mlp(const std::string& root, const std::string& out, int epochs) {
  return {"train", "--config", config_file("mlp.yaml"), "--data-dir", root,
          "--out", out, "--epochs", std::to_string(epochs), "--threads", "1", "--set", "data.train_limit=2000",
          "--set", "data.test_limit=500"};
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("a folder lock refuses a second holder (and train --resume), naming the first's process id, and dies with it") {
  std::string dir = scratch_dir("durability-lock");
  // check_free on a folder never locked: nothing to refuse, and no lock file made.
  CHECK_NOTHROW(FolderLock::check_free(dir, "the run folder"));
  CHECK(!std::filesystem::exists(dir + "/.lock"));
  int ready[2], done[2];
  REQUIRE(pipe(ready) == 0);
  REQUIRE(pipe(done) == 0);
  pid_t child = fork();
  if (child == 0) {
    FolderLock lock(dir, "the run folder");
    char c = 1;
    (void)!write(ready[1], &c, 1);
    (void)!read(done[0], &c, 1);  // hold until told
    _exit(0);
  }
  char c;
  REQUIRE(read(ready[0], &c, 1) == 1);
  try {
    FolderLock second(dir, "the run folder");
    FAIL("expected the second lock to be refused");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("process " + std::to_string(child)) != std::string::npos);
  }
  try {
    FolderLock::check_free(dir, "the run folder");
    FAIL("expected check_free to refuse a held folder");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("in use by process " + std::to_string(child)) != std::string::npos);
  }
  // train --resume into the held folder, which has no checkpoint yet (a run in its first
  // epoch): it is busy, not abandoned.
  RunResult resumed = run_mnistctl({"train", "--out", dir, "--resume"});
  INFO(resumed.err);
  CHECK(resumed.code == 2);
  CHECK(resumed.err.find("in use by process " + std::to_string(child)) != std::string::npos);
  CHECK(lines(resumed.err) == 1);
  kill(child, SIGKILL);  // dies holding it: the kernel releases the lock
  int status = 0;
  waitpid(child, &status, 0);
  CHECK_NOTHROW(FolderLock::check_free(dir, "the run folder"));
  CHECK_NOTHROW(FolderLock(dir, "the run folder"));
}

TEST_CASE("a second train into a run folder in use is refused naming the first's process id") {
  skip_without_mnist();
  std::string root = data_root("bounds-lock-data");
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
  // The kernel released the lock with the first process: a new run into the folder works
  // (replacing the killed one needs --overwrite).
  std::vector<std::string> again_args = quick_mlp(root, out, 1);
  again_args.push_back("--overwrite");
  RunResult again = run_mnistctl(again_args);
  INFO(again.err);
  CHECK(again.code == 0);
}

TEST_CASE("output paths: a file as --out, --resume without a checkpoint") {
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
