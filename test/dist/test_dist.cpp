// Data parallelism end to end: `mpirun -np 2 mnistctl train` on loopback (1 thread per rank,
// --oversubscribe, --bind-to none, root allowed: CI runs as root) against one process with
// the same seed and global batch, on small slices of real MNIST. What one model trained on
// two ranks must be: the same parameters up to summation order, the same accuracy, one run
// folder written by rank 0, a job that ends (not hangs) when a rank dies, a Ctrl-C that
// stops every rank with one checkpoint, and a resume with the same or another rank count.
// Real MNIST is required: missing data is a failure here, not a skip.
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "cli/run_files.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kRootOk = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"};

#if MNISTCTL_HAVE_MPI
// mpirun -np n mnistctl <args>: loopback, unbound, quiet (no Open MPI banners) unless asked.
RunResult mpirun(int n, const std::vector<std::string>& args,
                 const std::function<void(const std::string&, pid_t)>& on_line = {}, bool quiet = true) {
  std::vector<std::string> a = {"--oversubscribe", "--bind-to", "none", "-np", std::to_string(n), MNISTCTL_EXE};
  if (quiet) a.insert(a.begin(), "-q");
  a.insert(a.end(), args.begin(), args.end());
  return run_program(MNISTCTL_MPIEXEC, a, on_line, kRootOk);
}

// Momentum, dropout, batch 64 and 1001 images (a last batch of 41: 21 + 20 rows): the
// optimizer state, the dropout masks of global rows and an uneven split must all match.
std::string conv_dropout_config(const std::string& name) {
  return write_conv_dropout_config(scratch_dir(name), /*filters=*/8, /*dropout=*/"0.3", /*log_interval=*/5);
}

// Every parameter and optimizer tensor within `rel` of the tensor's largest magnitude
// (summation order is the only difference). NaN or Inf anywhere fails.
void require_close_weights(const std::string& a, const std::string& b, double rel) {
  auto wa = weights(a), wb = weights(b);
  REQUIRE(wa.size() == wb.size());
  REQUIRE(!wa.empty());
  for (size_t i = 0; i < wa.size(); ++i) {
    INFO(wa[i].name);
    REQUIRE(wa[i].name == wb[i].name);
    REQUIRE(wa[i].data.size() == wb[i].data.size());
    double scale = 0, diff = 0;
    for (size_t k = 0; k < wa[i].data.size(); ++k) {
      REQUIRE(std::isfinite(wa[i].data[k]));
      REQUIRE(std::isfinite(wb[i].data[k]));
      scale = std::max(scale, std::fabs(static_cast<double>(wa[i].data[k])));
      diff = std::max(diff, std::fabs(static_cast<double>(wa[i].data[k]) - wb[i].data[k]));
    }
    INFO("max |diff| " << diff << " against max |w| " << scale);
    REQUIRE(scale > 0);
    CHECK(diff <= rel * scale);
  }
}

double last_number(const std::string& out, const std::string& key) {
  std::regex re(key + "=([0-9.]+)");
  double v = -1;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
    v = std::stod((*it)[1]);
  return v;
}

// The pid of the mnistctl rank `rank` started by the mpirun `launcher` (a child of it or of
// its daemon), found through /proc; 0 while it is not there.
pid_t find_rank(pid_t launcher, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != launcher) continue;
    std::ifstream env(e.path() / "environ", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    std::replace(all.begin(), all.end(), '\0', '\n');
    if (("\n" + all).find("\n" + want + "\n") != std::string::npos) return static_cast<pid_t>(std::stol(name));
  }
  return 0;
}
#endif

}  // namespace

#if MNISTCTL_HAVE_MPI

TEST_CASE("2 ranks end one epoch with the parameters of one process (MLP, LeNet, dropout + momentum)") {
  std::string root = data_root("dist-parity");
  struct Case {
    std::string name, config;
    int limit;
  };
  for (const Case& k : {Case{"mlp", config_file("mlp.yaml"), 3000}, Case{"lenet", config_file("lenet.yaml"), 1000},
                        Case{"conv-dropout", conv_dropout_config("dist-parity-cfg"), 1001}}) {
    DYNAMIC_SECTION(k.name) {
      std::string one = scratch_dir("dist-parity-one-" + k.name), two = scratch_dir("dist-parity-two-" + k.name);
      std::vector<std::string> args = {"train", "--config", k.config, "--data-dir", root, "--epochs", "1",
                                       "--threads", "1", "--set", "init.type=xavier", "--set",
                                       "data.train_limit=" + std::to_string(k.limit), "--set", "data.test_limit=1000"};
      auto with_out = [&](const std::string& out) {
        auto a = args;
        a.insert(a.end(), {"--out", out});
        return a;
      };
      RunResult r1 = run_mnistctl(with_out(one));
      INFO(r1.out << r1.err);
      REQUIRE(r1.code == 0);
      RunResult r2 = mpirun(2, with_out(two));
      INFO(r2.out << r2.err);
      REQUIRE(r2.code == 0);
      CHECK(r2.out.find("data parallel: 2 ranks on 1 node") != std::string::npos);
      CHECK(r2.out.find("1 thread per rank") != std::string::npos);
      // Rank 0 alone prints: one epoch line, one done line.
      CHECK(std::count(r2.out.begin(), r2.out.end(), '\n') == std::count(r1.out.begin(), r1.out.end(), '\n') + 1);
      require_close_weights(one + "/last.ckpt", two + "/last.ckpt", 1e-5);
      // Sharded validation, reduced: the same count of correct test images.
      CHECK(last_number(r2.out, "Validation-accuracy") == last_number(r1.out, "Validation-accuracy"));
      CHECK(last_number(r2.out, "Validation-accuracy") > 0.2);
      CHECK(fs::exists(two + "/metrics.jsonl"));
      CHECK(fs::exists(two + "/checkpoints/epoch-001.ckpt"));
    }
  }
}

TEST_CASE("10 epochs of the MLP on 2 ranks reach the accuracy of one process within 0.002") {
  std::string root = data_root("dist-accuracy");
  std::string one = scratch_dir("dist-acc-one"), two = scratch_dir("dist-acc-two");
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out", out,
                                    "--epochs", "10", "--threads", "1", "--set", "data.train_limit=10000",
                                    "--set", "init.type=xavier"};
  };
  RunResult r1 = run_mnistctl(args(one));
  INFO(r1.out << r1.err);
  REQUIRE(r1.code == 0);
  RunResult r2 = mpirun(2, args(two));
  INFO(r2.out << r2.err);
  REQUIRE(r2.code == 0);
  double a1 = last_number(r1.out, "Validation-accuracy"), a2 = last_number(r2.out, "Validation-accuracy");
  INFO("one process " << a1 << ", two ranks " << a2);
  CHECK(a1 > 0.9);  // it learned (10,000 images, the tutorial's recipe with xavier init)
  CHECK(std::fabs(a1 - a2) <= 0.002);
}

TEST_CASE("a killed rank ends the job within 30 s and rank 0's checkpoint resumes with 2 ranks and with 1") {
  std::string root = data_root("dist-kill");
  std::string out = scratch_dir("dist-kill-run");
  // The kill lands 0.3 s after epoch 1's line, so the run must last well beyond that: 5
  // epochs of 12,000 images, several seconds (3 epochs of 2,000, 0.4 s since conv1's faster
  // loops, ended before the kill).
  constexpr int kEpochs = 5;
  std::vector<std::string> args = {"train", "--config", config_file("lenet.yaml"), "--data-dir", root, "--out", out,
                                   "--epochs", std::to_string(kEpochs), "--threads", "1", "--set",
                                   "data.train_limit=12000", "--set", "data.test_limit=500", "--set",
                                   "init.type=xavier"};
  pid_t victim = 0;
  auto killed_at = std::chrono::steady_clock::now();
  RunResult r = mpirun(2, args, [&](const std::string& line, pid_t launcher) {
    if (victim == 0 && line.rfind("Epoch[1] Train-accuracy", 0) == 0) {
      // Epoch 1's checkpoint is being written now: give it a moment, then kill rank 1.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      victim = find_rank(launcher, 1);
      if (victim > 0) {
        kill(victim, SIGKILL);
        killed_at = std::chrono::steady_clock::now();
      }
    }
  }, /*quiet=*/false);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  INFO(r.out << r.err);
  REQUIRE(victim > 0);
  CHECK(r.code != 0);
  CHECK(took < 30.0);
  // Open MPI names the rank that died (without -q).
  CHECK(r.err.find("process rank 1") != std::string::npos);
  CHECK(r.err.find("exited on signal 9") != std::string::npos);
  CHECK(r.out.find("done:") == std::string::npos);

  Checkpoint c = load_checkpoint(out + "/last.ckpt");  // intact: written atomically
  CHECK(c.meta_int("epoch", "") >= 1);

  RunResult two = mpirun(2, {"train", "--out", out, "--data-dir", root, "--resume", "--threads", "1",
                             "--epochs", std::to_string(kEpochs)});
  INFO(two.out << two.err);
  REQUIRE(two.code == 0);
  CHECK(two.out.find("resuming") != std::string::npos);
  CHECK(load_checkpoint(out + "/last.ckpt").meta_int("epoch", "") == kEpochs);
  // The same run goes on as a single process.
  RunResult one = run_mnistctl({"train", "--out", out, "--data-dir", root, "--resume", "--threads", "1",
                                "--epochs", std::to_string(kEpochs + 1)});
  INFO(one.out << one.err);
  REQUIRE(one.code == 0);
  CHECK(load_checkpoint(out + "/last.ckpt").meta_int("epoch", "") == kEpochs + 1);
  CHECK(last_number(one.out, "Validation-accuracy") > 0.5);
}

TEST_CASE("Ctrl-C under mpirun stops every rank with one checkpoint and resume ends where an uninterrupted run does") {
  std::string root = data_root("dist-sigint");
  std::string whole = scratch_dir("dist-sigint-whole"), split = scratch_dir("dist-sigint-split");
  // SIGINT to the launcher is what Ctrl-C sends mpirun; it passes SIGTERM on to the ranks about
  // a second later, so the run must last well beyond that: 10 epochs, several seconds where an
  // epoch takes a third of one. Rank 0 logs every 5 batches: mpirun stops reading its ranks'
  // output while it stops the job, and a rank 0 that blocked in a progress line then never
  // wrote its checkpoint (it did so in every run before the fix); now it gives the line up.
  constexpr int kEpochs = 10;
  const std::string config =
      write_conv_dropout_config(scratch_dir("dist-sigint-cfg"), /*filters=*/8, /*dropout=*/"0.3", /*log_interval=*/5);
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"train", "--config", config, "--data-dir", root,
                                    "--out", out, "--epochs", std::to_string(kEpochs), "--threads", "1", "--set",
                                    "data.train_limit=30000", "--set", "data.test_limit=500"};
  };
  REQUIRE(mpirun(2, args(whole)).code == 0);
  bool sent = false;
  RunResult r = mpirun(2, args(split), signal_at("Batch[100/", SIGINT, sent));
  INFO(r.out << r.err);
  REQUIRE(sent);
  CHECK(r.code != 0);
  // The checkpoint was written at the stop: it is at or past the last progress that reached
  // the output (the line that says so may itself be lost with mpirun no longer reading).
  const RunPosition at = checkpoint_position(split + "/last.ckpt");
  const RunPosition printed = printed_position(r.out);
  INFO("checkpoint at epoch " << at.first << " batch " << at.second << ", output got to epoch " << printed.first
                              << " batch " << printed.second);
  CHECK(at >= printed);
  CHECK(at.first < kEpochs);
  RunResult resumed = mpirun(2, {"train", "--out", split, "--data-dir", root, "--resume", "--threads", "1"});
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.code == 0);
  // Same ranks, same order of sums: bit for bit.
  auto a = weights(whole + "/last.ckpt"), b = weights(split + "/last.ckpt");
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].name);
    CHECK(a[i].data == b[i].data);
  }
}

TEST_CASE("ranks whose parameters drift apart stop the job after the epoch with exit 3") {
  // Two programs under one mpirun (MPMD): the second rank's learning rate differs, so the same
  // summed gradients move its parameters elsewhere and the per-epoch checksum must catch it.
  std::string root = data_root("dist-drift");
  const std::string out = scratch_dir("dist-drift-run") + "/run";
  std::vector<std::string> train = {"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out", out,
                                    "--epochs", "2", "--threads", "1", "--set", "data.train_limit=1000",
                                    "--set", "data.test_limit=200"};
  std::vector<std::string> a = {"-q", "--oversubscribe", "--bind-to", "none", "-np", "1", MNISTCTL_EXE};
  a.insert(a.end(), train.begin(), train.end());
  a.insert(a.end(), {":", "-np", "1", MNISTCTL_EXE});
  a.insert(a.end(), train.begin(), train.end());
  a.insert(a.end(), {"--set", "train.learning_rate=0.05"});
  RunResult r = run_program(MNISTCTL_MPIEXEC, a, {}, kRootOk);
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  CHECK(r.err.find("ranks hold different parameters after epoch 1") != std::string::npos);
  CHECK(r.out.find("Epoch[2]") == std::string::npos);  // stopped before the second epoch
}

TEST_CASE("a global batch that does not split over the ranks is refused with one line") {
  std::string root = data_root("dist-refuse");
  RunResult r = mpirun(2, {"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out",
                           scratch_dir("dist-refuse-run"), "--epochs", "1", "--set", "train.batch_size=101"});
  INFO(r.out << r.err);
  CHECK(r.code == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find("train.batch_size 101 cannot be split evenly over 2 MPI ranks") != std::string::npos);
}

TEST_CASE("without mpirun an MPI build trains as one process") {
  std::string root = data_root("dist-single");
  std::string out = scratch_dir("dist-single-run");
  RunResult r = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out", out,
                              "--epochs", "1", "--threads", "1", "--set", "data.train_limit=1000"});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("data parallel") == std::string::npos);
}

#else  // built without MPI

TEST_CASE("a build without MPI refuses to be one of several mpirun ranks (exit 2, one line)") {
  RunResult r = run_mnistctl({"train", "--dry-run"}, {}, {"OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_RANK=0"});
  INFO(r.out << r.err);
  CHECK(r.code == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find("built without MPI") != std::string::npos);
  RunResult pmi = run_mnistctl({"train", "--dry-run"}, {}, {"PMI_SIZE=4"});
  CHECK(pmi.code == 2);
  // One rank (or no launcher at all) is simply one process.
  CHECK(run_mnistctl({"train", "--dry-run"}, {}, {"OMPI_COMM_WORLD_SIZE=1"}).code == 0);
}

#endif
