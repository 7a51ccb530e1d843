// Every output a subcommand writes, made unwritable, through the binary: the run folder and
// its checkpoints (train), --output and --save-preprocessed (predict), --output (export,
// report) and the data folder (fetch). eval, bench, info, help and completion write only to
// stdout. The README's exit-code table is the contract checked here:
//   - failing to create or write an output is exit 3: a parent that is a regular file
//     (ENOTDIR) or a full disk (RLIMIT_FSIZE with SIGXFSZ ignored: EFBIG);
//   - an output path that exists and is the wrong kind (a folder where a file goes, a file
//     where a folder goes) is refused before anything is written: exit 2.
// Either way stderr is one line of the project's own, "mnistctl: ...", naming the path, with
// no library text. The tests run as root, so permissions cannot make a path unwritable.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "test_util.h"

using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

constexpr int kExitUsage = 2, kExitIo = 3;

// One data folder per test process, written by fetch itself from the real files as a mirror
// (so fetch's own success path is exercised too). `tag` names the scratch folder after the
// first caller, so test cases that ctest runs in parallel never share (or clear) one.
const std::string& fetched_data_root(const std::string& tag) {
  static const std::string root = [&] {
    const std::string src = mnist_dir();
    if (src.empty()) missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
    std::string r = scratch_dir(tag + "-data");
    RunResult f = run_mnistctl({"fetch", "--mirror", src, "--data-dir", r});
    INFO(f.out << f.err);
    REQUIRE(f.code == 0);
    return r;
  }();
  return root;
}

std::vector<std::string> tiny_train(const std::string& tag, const std::string& out) {
  return {"train", "--config", config_file("mlp.yaml"), "--data-dir",
          fetched_data_root(tag),
          "--out", out, "--epochs", "1", "--threads", "1", "--set", "data.train_limit=500", "--set",
          "data.test_limit=200"};
}

// One trained run per test process (1 epoch on 500 images), named like fetched_data_root
// (test_util.h's data_root links the real files instead of fetching them).
const std::string& trained_run(const std::string& tag) {
  static const std::string run = [&] {
    std::string r = scratch_dir(tag + "-run") + "/run";
    RunResult t = run_mnistctl(tiny_train(tag, r));
    INFO(t.out << t.err);
    REQUIRE(t.code == 0);
    return r;
  }();
  return run;
}

// A regular file, to stand where a folder is needed.
std::string regular_file(const std::string& dir, const std::string& name) {
  std::string p = dir + "/" + name;
  std::ofstream(p) << "not a folder\n";
  return p;
}

// The contract for a failed output: the exit code, and one line of ours naming `path`.
void check_refusal(const RunResult& r, int code, const std::string& path) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.code == code);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.rfind("mnistctl: ", 0) == 0);
  CHECK(r.err.find(path) != std::string::npos);
  for (const char* raw : {"filesystem error", "std::", "basic_ios", "iostream", "what()"}) CHECK(r.err.find(raw) == std::string::npos);
}

// The three ways a file output (predict, report and export --output) fails, a SECTION each:
// under a regular file (ENOTDIR: exit 3), a folder in its place (EISDIR: exit 2, the folder
// left empty), a full disk (EFBIG: exit 3 under a limit of `full_limit` bytes, which `why_full`
// explains, and neither the file nor a temporary left). `args(path)` is the command line that
// writes the output to `path`; `name` is the file's name; `label` starts each SECTION's name.
void check_file_output(const std::string& dir, const std::string& label, const std::string& name,
                       const std::function<std::vector<std::string>(const std::string&)>& args, rlim_t full_limit,
                       const std::string& why_full) {
  SECTION(label + "under a regular file (ENOTDIR)") {
    const std::string out = regular_file(dir, "plain") + "/" + name;
    check_refusal(run_mnistctl(args(out)), kExitIo, out);
  }
  SECTION(label + "a folder (EISDIR)") {
    const std::string out = dir + "/" + name;
    fs::create_directories(out);
    check_refusal(run_mnistctl(args(out)), kExitUsage, out);
    CHECK(fs::is_empty(out));
  }
  SECTION(label + "a full disk (EFBIG): " + why_full) {
    const std::string out = dir + "/full-" + name;
    RunResult r = run_mnistctl(args(out), {}, {}, full_limit);
    check_refusal(r, kExitIo, out);
    CHECK(r.err.find("File too large") != std::string::npos);
    CHECK_FALSE(fs::exists(out));
    for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().string().find(".tmp.") == std::string::npos);
  }
}

}  // namespace

TEST_CASE("train: a run folder or checkpoint that cannot be written is exit 3 (2 for the wrong kind), one line naming it") {
  const std::string tag = "outputs-train", dir = scratch_dir(tag);
  (void)fetched_data_root(tag);

  SECTION("--out under a regular file (ENOTDIR)") {
    const std::string out = regular_file(dir, "plain") + "/run";
    check_refusal(run_mnistctl(tiny_train(tag, out)), kExitIo, out);
  }
  SECTION("checkpoints/ is a regular file: a file where the run keeps a folder") {
    const std::string out = dir + "/ckpt-file";
    fs::create_directories(out);
    const std::string ckpts = regular_file(out, "checkpoints");
    check_refusal(run_mnistctl(tiny_train(tag, out)), kExitUsage, ckpts);
  }
  SECTION("--overwrite where checkpoints/ has become a file: refused before anything is deleted") {
    const std::string out = dir + "/over";
    fs::copy(trained_run(tag), out, fs::copy_options::recursive);
    fs::remove_all(out + "/checkpoints");
    const std::string ckpts = regular_file(out, "checkpoints");
    std::vector<std::string> over = tiny_train(tag, out);
    over.push_back("--overwrite");
    check_refusal(run_mnistctl(over), kExitUsage, ckpts);
    CHECK(fs::exists(out + "/last.ckpt"));
    CHECK(fs::exists(out + "/metrics.jsonl"));
  }
  SECTION("a full disk while writing the checkpoint (EFBIG)") {
    const std::string out = dir + "/full";
    RunResult r = run_mnistctl(tiny_train(tag, out), {}, {}, 64 * 1024);  // the logs fit, the 437 kB checkpoint does not
    check_refusal(r, kExitIo, out + "/");
    CHECK(r.err.find(".ckpt") != std::string::npos);
    CHECK(r.err.find("File too large") != std::string::npos);
    CHECK_FALSE(fs::exists(out + "/last.ckpt"));
    for (const auto& e : fs::recursive_directory_iterator(out)) CHECK(e.path().string().find(".tmp.") == std::string::npos);
  }
}

TEST_CASE("predict: --output and --save-preprocessed that cannot be written are exit 3 (2 for the wrong kind)") {
  const std::string tag = "outputs-predict", dir = scratch_dir(tag);
  const std::string run = trained_run(tag);
  auto predict = [&](std::vector<std::string> more) {
    std::vector<std::string> a = {"predict", "--model", run, "--data-dir", fetched_data_root(tag), "--threads", "1"};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };

  check_file_output(dir, "--output: ", "probs.csv", [&](const std::string& out) { return predict({"--output", out}); },
                    64 * 1024, "the rows of 10,000 test images do not fit in 64 kB");
  SECTION("--save-preprocessed under a regular file (ENOTDIR)") {
    const std::string seen = regular_file(dir, "plain") + "/seen";
    check_refusal(run_mnistctl(predict({"--save-preprocessed", seen})), kExitIo, seen);
  }
  SECTION("--save-preprocessed is a regular file: a file where a folder goes") {
    const std::string seen = regular_file(dir, "seen");
    check_refusal(run_mnistctl(predict({"--save-preprocessed", seen})), kExitUsage, seen);
  }
  SECTION("--save-preprocessed on a full disk (EFBIG): a 28x28 PGM does not fit in 100 bytes") {
    const std::string seen = dir + "/seen-full";
    RunResult r = run_mnistctl(predict({"--save-preprocessed", seen}), {}, {}, 100);
    check_refusal(r, kExitIo, seen);
    CHECK(r.err.find("File too large") != std::string::npos);
  }
}

TEST_CASE("report: --output that cannot be written is exit 3 (2 for a folder)") {
  const std::string tag = "outputs-report", dir = scratch_dir(tag);
  const std::string run = trained_run(tag);
  auto report = [&](const std::string& out) {
    return std::vector<std::string>{"report", run, "--data-dir", fetched_data_root(tag), "--output", out};
  };
  check_file_output(dir, "", "report.html", report, 4096, "the page does not fit in 4 kB");
}

#if MNISTCTL_TEST_ONNX_BUILT
TEST_CASE("export: --output that cannot be written is exit 3 (2 for a folder)") {
  const std::string tag = "outputs-export", dir = scratch_dir(tag);
  const std::string run = trained_run(tag);
  auto exp = [&](const std::string& out) { return std::vector<std::string>{"export", "--model", run, "--output", out}; };
  check_file_output(dir, "", "model.onnx", exp, 64 * 1024, "the MLP's 400 kB of weights do not fit in 64 kB");
}
#endif

TEST_CASE("fetch: a data folder or data file that cannot be written is exit 3 (2 for a folder in a file's place)") {
  const std::string dir = scratch_dir("outputs-fetch");
  const std::string src = mnist_dir();
  if (src.empty()) missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");

  SECTION("--data-dir under a regular file (ENOTDIR)") {
    const std::string root = regular_file(dir, "plain") + "/data";
    check_refusal(run_mnistctl({"fetch", "--mirror", src, "--data-dir", root}), kExitIo, root);
  }
  SECTION("a data file that is a folder") {
    const std::string root = dir + "/folder-in-place";
    const std::string file = root + "/mnist/train-images-idx3-ubyte.gz";
    fs::create_directories(file);
    RunResult r = run_mnistctl({"fetch", "--mirror", src, "--data-dir", root});
    check_refusal(r, kExitUsage, file);
    CHECK(r.err.find("is a folder") != std::string::npos);
    CHECK(fs::is_directory(file));  // the user's folder is left alone
  }
  SECTION("a full disk (EFBIG): the 9.9 MB training images do not fit in 1 MB") {
    const std::string root = dir + "/full";
    RunResult r = run_mnistctl({"fetch", "--mirror", src, "--data-dir", root}, {}, {}, 1 << 20);
    check_refusal(r, kExitIo, root + "/mnist/");
    CHECK(r.err.find("File too large") != std::string::npos);
    CHECK_FALSE(fs::exists(root + "/mnist/train-images-idx3-ubyte.gz"));
    if (fs::exists(root + "/mnist"))
      for (const auto& e : fs::directory_iterator(root + "/mnist")) {
        INFO(e.path());
        CHECK(e.path().string().find(".part") == std::string::npos);
        CHECK(e.path().string().find(".tmp.") == std::string::npos);
      }
  }
}
