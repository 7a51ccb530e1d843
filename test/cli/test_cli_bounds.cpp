// Refusals that must stay cheap, through the binary, with the child's peak RSS measured
// (wait4): a few-hundred-byte checkpoint whose embedded config declares a huge network, a
// small checkpoint whose network needs more activation memory than the inference budget, a
// config whose shapes overflow 64 bits; and a full disk (RLIMIT_FSIZE, SIGXFSZ ignored, so
// the write fails with EFBIG) during a checkpoint write: exit 3, previous checkpoint intact.
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

// A valid checkpoint file (CRC and all) with this embedded config and these tensors.
std::string write_checkpoint(const std::string& dir, const std::string& yaml, std::vector<NamedTensor> tensors) {
  Checkpoint c;
  c.config_yaml = yaml;
  c.meta = {{"format", "mnistctl checkpoint"}, {"epoch", "1"}, {"batch", "0"}, {"step", "1"}};
  c.tensors = std::move(tensors);
  const std::string path = dir + "/model.ckpt";
  save_checkpoint(path, c);
  return path;
}

}  // namespace

TEST_CASE("a tiny checkpoint declaring a huge network is refused at once, in little memory") {
  const std::string dir = scratch_dir("bounds-huge-ckpt");
  // 2^20 x 784 weights (3.3 GB) declared; none in the file.
  const std::string ckpt = write_checkpoint(
      dir, "network:\n  layers:\n    - {type: fully_connected, num_hidden: 1048576}\n"
           "    - {type: fully_connected, num_hidden: 10}\n    - {type: softmax_output}\n",
      {});
  CHECK(fs::file_size(ckpt) < 1000);
  for (const char* cmd : {"eval", "predict"}) {
    Limited r = run_limited({cmd, "--model", ckpt, "--data-dir", dir}, dir);
    INFO(cmd << ": " << r.err << " (peak RSS " << r.max_rss_kb / 1024 << " MB)");
    CHECK(r.code == 2);
    CHECK(r.err.find("checkpoint has no parameter 'fully_connected0.weight'") != std::string::npos);
    CHECK(r.max_rss_kb < 200 * 1024);
  }
  Limited info = run_limited({"info", ckpt}, dir);  // info reports the damage too, rather than exit 0
  INFO(info.err);
  CHECK(info.code == 2);
  CHECK(info.err.find("checkpoint has no parameter 'fully_connected0.weight'") != std::string::npos);
}

TEST_CASE("a checkpoint whose network needs more than the inference budget is refused before binding") {
  const std::string dir = scratch_dir("bounds-activations");
  // 65,536 1x1 filters: 128 K parameters (in the file), but 100 x 65536 x 28 x 28 floats of
  // activations (20 GB) at the inference batch.
  std::vector<NamedTensor> t;
  t.push_back({"param/conv.weight", Shape{65536, 1, 1, 1}, std::vector<float>(65536, 0.01f)});
  t.push_back({"param/conv.bias", Shape{65536}, std::vector<float>(65536, 0.0f)});
  t.push_back({"param/fc.weight", Shape{10, 65536}, std::vector<float>(655360, 0.0f)});
  t.push_back({"param/fc.bias", Shape{10}, std::vector<float>(10, 0.0f)});
  const std::string ckpt = write_checkpoint(
      dir, "network:\n  layers:\n    - {type: convolution, name: conv, kernel: 1, num_filter: 65536}\n"
           "    - {type: pooling, kernel: 28, stride: 28}\n    - {type: flatten}\n"
           "    - {type: fully_connected, name: fc, num_hidden: 10}\n    - {type: softmax_output}\n",
      std::move(t));
  Limited r = run_limited({"eval", "--model", ckpt, "--data-dir", dir}, dir);
  INFO(r.err << " (peak RSS " << r.max_rss_kb / 1024 << " MB)");
  CHECK(r.code == 2);
  CHECK(r.err.find("inference budget") != std::string::npos);
  CHECK(r.max_rss_kb < 200 * 1024);
}

TEST_CASE("shapes that overflow 64 bits are refused naming the layer, also by --dry-run") {
  const std::string dir = scratch_dir("bounds-overflow");
  const std::string cfg = dir + "/overflow.yaml";
  std::ofstream(cfg) << "name: overflow\nnetwork:\n  input: [1, 4096, 4096]\n  layers:\n"
                        "    - {type: convolution, kernel: 1, pad: 1024, num_filter: 65536}\n"
                        "    - {type: convolution, kernel: 1, pad: 1024, num_filter: 65536}\n"
                        "    - {type: convolution, kernel: 1, pad: 1024, num_filter: 65536}\n"
                        "    - {type: convolution, kernel: 1, pad: 1024, num_filter: 65536}\n"
                        "    - {type: fully_connected, num_hidden: 1048576}\n"
                        "    - {type: softmax_output}\n";
  RunResult r = run_mnistctl({"train", "--config", cfg, "--dry-run"});
  INFO(r.out << r.err);
  CHECK(r.code == 2);
  CHECK(r.err.find("overflow.yaml:") != std::string::npos);
  CHECK(r.err.find("64 bits") != std::string::npos);
  CHECK(r.out.find("-") == std::string::npos);  // no negative parameter count printed
}

TEST_CASE("a full disk during a checkpoint write exits 3 and leaves the previous checkpoint loadable") {
  const std::string root = data_root("bounds-full-disk");
  const std::string out = root + "/run";
  const std::vector<std::string> recipe = {"train", "--config", config_file("mlp.yaml"),
                                           "--data-dir", root, "--out", out, "--threads", "2", "--set",
                                           "data.train_limit=2000", "--set", "data.test_limit=1000"};
  std::vector<std::string> first = recipe;
  first.insert(first.end(), {"--epochs", "1"});
  REQUIRE(run_limited(first, root).code == 0);
  REQUIRE(fs::exists(out + "/last.ckpt"));
  const auto before = fs::file_size(out + "/last.ckpt");
  // Files may grow to 64 kB: the logs can, the 437 kB checkpoint cannot.
  std::vector<std::string> more = recipe;
  more.insert(more.end(), {"--epochs", "2", "--resume"});
  Limited r = run_limited(more, root, 64 * 1024);
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find("File too large") != std::string::npos);
  Checkpoint c = load_checkpoint(out + "/last.ckpt");  // intact: epoch 1, the same bytes
  CHECK(c.meta_int("epoch", "") == 1);
  CHECK(fs::file_size(out + "/last.ckpt") == before);
  for (const auto& e : fs::directory_iterator(out)) CHECK(e.path().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("train --resume checks the checkpoint's tensors against its embedded network before allocating it") {
  // A run folder whose last.ckpt declares 2^20 x 784 weights (3.3 GB) and holds none.
  const std::string dir = scratch_dir("bounds-resume-huge");
  const std::string run = dir + "/run";
  fs::create_directories(run);
  const std::string ckpt = write_checkpoint(
      dir, "name: huge\nnetwork:\n  layers:\n    - {type: fully_connected, num_hidden: 1048576}\n"
           "    - {type: fully_connected, num_hidden: 10}\n    - {type: softmax_output}\ntrain: {epochs: 3}\n",
      {});
  fs::copy_file(ckpt, run + "/last.ckpt");
  Limited r = run_limited({"train", "--out", run, "--resume", "--data-dir", dir}, dir);
  INFO(r.err << " (peak RSS " << r.max_rss_kb / 1024 << " MB)");
  CHECK(r.code == 2);
  CHECK(r.err.find("checkpoint has no parameter 'fully_connected0.weight'") != std::string::npos);
  CHECK(r.max_rss_kb < 200 * 1024);
}

TEST_CASE("a checkpoint with a NaN weight, a negative position or no loss layer is refused in one line") {
  const std::string dir = scratch_dir("bounds-damaged-values");
  const std::string net = "network:\n  input: [1, 2, 2]\n  layers:\n    - {type: flatten}\n"
                          "    - {type: fully_connected, name: fc, num_hidden: 10}\n";
  auto params = [](float first) {
    std::vector<NamedTensor> t;
    t.push_back({"param/fc.weight", Shape{10, 4}, std::vector<float>(40, 0.01f)});
    t.push_back({"param/fc.bias", Shape{10}, std::vector<float>(10, 0.0f)});
    t[1].data[3] = first;
    return t;
  };
  // NaN and Inf: eval and predict would print nan probabilities (and invalid JSON).
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const std::string ckpt = write_checkpoint(dir, net + "    - {type: softmax_output}\n", params(bad));
    for (const char* cmd : {"eval", "predict", "info"}) {
      Limited r = run_limited(std::string(cmd) == "info" ? std::vector<std::string>{cmd, ckpt}
                                                         : std::vector<std::string>{cmd, "--model", ckpt, "--data-dir", dir},
                              dir);
      INFO(cmd << ": " << r.err);
      CHECK(r.code == 2);
      CHECK(r.err.find("corrupt checkpoint: tensor 'param/fc.bias' holds a non-finite value") != std::string::npos);
    }
  }
  // Without a loss layer the outputs are not probabilities.
  const std::string logits = write_checkpoint(dir, net, params(0.0f));
  for (const char* cmd : {"eval", "predict"}) {
    Limited r = run_limited({cmd, "--model", logits, "--data-dir", dir}, dir);
    INFO(cmd << ": " << r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find("the network must end in a loss layer (softmax_output)") != std::string::npos);
  }
  // A negative position.
  Checkpoint c = load_checkpoint(write_checkpoint(dir, net + "    - {type: softmax_output}\n", params(0.0f)));
  c.meta["batch"] = "-3";
  save_checkpoint(dir + "/negative.ckpt", c);
  Limited r = run_limited({"info", dir + "/negative.ckpt"}, dir);
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK(r.err.find("corrupt checkpoint: meta field 'batch' is -3, expected 0 or more") != std::string::npos);
}
