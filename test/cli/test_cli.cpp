// End to end through the binary on small slices of real MNIST: a short MLP run learns,
// eval and predict read its checkpoint, an interrupted and resumed run ends with exactly
// the weights of an uninterrupted one, and bad input gives the documented exit codes.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "cli/run_files.h"
#include "test_util.h"
#include "data/dataset.h"
#include "train/checkpoint.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

// A quick MLP recipe: xavier init learns within one small epoch (the tutorial's +-0.01
// init needs more data than a test should spend).
std::vector<std::string> quick_mlp(const std::string& root, const std::string& out, int epochs,
                                   int limit = 6000) {
  return {"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out",
          out, "--epochs", std::to_string(epochs), "--threads", "2", "--set", "data.train_limit=" + std::to_string(limit),
          "--set", "init.type=xavier", "--set", "train.log_interval=10"};
}

}  // namespace

TEST_CASE("a short MLP run learns and eval and predict read its checkpoint") {
  skip_without_mnist();
  std::string root = data_root("cli-learn");
  std::string out = scratch_dir("cli-learn-run");
  RunResult r = run_mnistctl(quick_mlp(root, out, 2));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("Speed:") != std::string::npos);
  CHECK(fs::exists(out + "/last.ckpt"));
  CHECK(fs::exists(out + "/checkpoints/epoch-001.ckpt"));
  CHECK(fs::exists(out + "/checkpoints/epoch-002.ckpt"));
  CHECK(fs::exists(out + "/config.yaml"));
  std::ifstream jl(out + "/metrics.jsonl");
  int epochs = 0;
  double val = 0;
  for (std::string line; std::getline(jl, line);)
    if (line.find("\"type\":\"epoch\"") != std::string::npos) {
      ++epochs;
      val = json_number(line, "val_accuracy");
    }
  CHECK(epochs == 2);
  CHECK(val > 0.8);  // chance is 0.1

  RunResult e = run_mnistctl({"eval", "--model", out, "--data-dir", root, "--json"});
  INFO(e.err);
  REQUIRE(e.code == 0);
  double acc = json_number(e.out, "accuracy");
  CHECK(acc == Approx(val).margin(1e-4));  // the same test set, the same weights
  CHECK(json_number(e.out, "images") == 10000);
  CHECK(json_number(e.out, "top_k_accuracy") >= acc);
  CHECK(e.out.find("\"confusion_matrix\":[[") != std::string::npos);

  CHECK(run_mnistctl({"eval", "--model", out, "--data-dir", root, "--min-accuracy", "0.5"}).code == 0);
  RunResult gate = run_mnistctl({"eval", "--model", out, "--data-dir", root, "--min-accuracy", "0.999"});
  CHECK(gate.code == 1);
  CHECK(gate.err.find("below --min-accuracy") != std::string::npos);

  RunResult p = run_mnistctl({"predict", "--model", out + "/last.ckpt", "--data-dir", root});
  REQUIRE(p.code == 0);
  CHECK(std::count(p.out.begin(), p.out.end(), '\n') == 10001);  // header + one row per test image
  CHECK(p.out.rfind("source,index,label,predicted,p0,", 0) == 0);  // the test set: true labels

  std::string pj = out + "/pred.json";
  RunResult pr = run_mnistctl({"predict", "--model", out, "--data-dir", root, "--format", "json", "--output", pj});
  REQUIRE(pr.code == 0);
  std::ifstream in(pj);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(std::count(text.begin(), text.end(), '{') == 10000);
  CHECK(text.find("\"probabilities\":[") != std::string::npos);
}

TEST_CASE("predict reads the user's own PGM images at 28x28 and larger") {
  skip_without_mnist();
  std::string root = data_root("cli-pgm");
  std::string out = scratch_dir("cli-pgm-run");
  REQUIRE(run_mnistctl(quick_mlp(root, out, 2)).code == 0);
  // Test image 0 is a clear 7. Written as a 28x28 PGM, and as a 3x larger one with dark ink
  // on white paper (as a scan would be), which predict must invert, shrink and centre.
  Dataset test = load_split(root, "mnist", Split::test, 1);
  REQUIRE(test.labels[0] == 7);
  {
    std::ofstream f(out + "/seven.pgm", std::ios::binary);
    f << "P5\n28 28\n255\n";
    f.write(reinterpret_cast<const char*>(test.images.data()), 28 * 28);
  }
  {
    std::ofstream f(out + "/seven-big.pgm", std::ios::binary);
    f << "P5\n# scanned\n84 84\n255\n";
    for (int y = 0; y < 84; ++y)
      for (int x = 0; x < 84; ++x) f.put(static_cast<char>(255 - test.images[static_cast<size_t>((y / 3) * 28 + x / 3)]));
  }
  RunResult p = run_mnistctl({"predict", "--model", out, "--input", out + "/seven.pgm", "--input", out + "/seven-big.pgm"});
  INFO(p.out << p.err);
  REQUIRE(p.code == 0);
  CHECK(p.out.find(out + "/seven.pgm,0,7,") != std::string::npos);
  CHECK(p.out.find(out + "/seven-big.pgm,0,7,") != std::string::npos);

  // An IDX file of three test images (raw, big-endian header), as a user's own batch.
  Dataset three = load_split(root, "mnist", Split::test, 3);
  {
    std::ofstream f(out + "/three.idx", std::ios::binary);
    const unsigned char header[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28};
    f.write(reinterpret_cast<const char*>(header), sizeof header);
    f.write(reinterpret_cast<const char*>(three.images.data()), 3 * 28 * 28);
  }
  RunResult idx = run_mnistctl({"predict", "--model", out, "--input", out + "/three.idx", "--format", "json"});
  INFO(idx.err);
  REQUIRE(idx.code == 0);
  CHECK(std::count(idx.out.begin(), idx.out.end(), '{') == 3);
  CHECK(idx.out.find("\"index\":2,\"predicted\":" + std::to_string(three.labels[2])) != std::string::npos);

  std::ofstream(out + "/notes.txt") << "hello, world\n";
  RunResult txt = run_mnistctl({"predict", "--model", out, "--input", out + "/notes.txt"});
  CHECK(txt.code == 2);
  CHECK(txt.err.find("not a PGM (P5/P2), PNG or IDX image file") != std::string::npos);

  std::ofstream(out + "/broken.pgm") << "P5\n28 28\n255\nshort";
  RunResult bad = run_mnistctl({"predict", "--model", out, "--input", out + "/broken.pgm"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("broken.pgm") != std::string::npos);
}

TEST_CASE("resume after an interruption gives exactly the weights of an uninterrupted run") {
  skip_without_mnist();
  std::string root = data_root("cli-resume");
  std::string whole = scratch_dir("cli-resume-whole"), split = scratch_dir("cli-resume-split");
  // Momentum (optimizer state in the checkpoint), dropout (masks from the step counter) and a
  // batch size that leaves a smaller last batch: everything resume must carry over.
  std::string cfg = interruptible_config("cli-resume-config");
  auto recipe = [&](const std::string& out, int epochs) {
    return std::vector<std::string>{"train", "--config", cfg, "--data-dir", root, "--out", out, "--epochs",
                                    std::to_string(epochs), "--threads", "2", "--set", "data.train_limit=12000"};
  };
  REQUIRE(run_mnistctl(recipe(whole, 2)).code == 0);

  // Ctrl-C in the middle of the first epoch: exit 130 with a checkpoint.
  bool sent = false;
  // At batch 20, 168 batches of the epoch remain: far more time than the signal needs.
  RunResult r = run_mnistctl(recipe(split, 2), signal_at("Batch[20/", SIGINT, sent));
  INFO(r.out << r.err);
  REQUIRE(sent);
  REQUIRE(r.code == 130);
  CHECK(r.out.find("interrupted") != std::string::npos);
  Checkpoint c = load_checkpoint(split + "/last.ckpt");
  CHECK(c.meta_int("epoch", "") == 0);
  CHECK(c.meta_int("batch", "") > 0);

  // Resuming with --config of another network is refused; the run is untouched.
  RunResult other = run_mnistctl({"train", "--out", split, "--data-dir", root, "--resume", "--config",
                                  config_file("mlp.yaml")});
  CHECK(other.code == 2);
  CHECK(other.err.find("holds a run of 'conv-dropout'") != std::string::npos);

  RunResult resumed = run_mnistctl({"train", "--out", split, "--data-dir", root, "--resume", "--threads", "2"});
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.code == 0);
  CHECK(resumed.out.find("resuming") != std::string::npos);
  require_same_weights(whole + "/last.ckpt", split + "/last.ckpt");
  CHECK(weights(split + "/last.ckpt").size() == 12);  // 6 parameters and their momentum

  // Extending a finished run by an epoch with --resume --epochs equals training 3 at once.
  std::string three = scratch_dir("cli-resume-three");
  REQUIRE(run_mnistctl(recipe(three, 3)).code == 0);
  REQUIRE(run_mnistctl({"train", "--out", whole, "--data-dir", root, "--resume", "--epochs", "3", "--threads", "2"})
              .code == 0);
  require_same_weights(three + "/last.ckpt", whole + "/last.ckpt");
}

TEST_CASE("SIGTERM stops a run like Ctrl-C: checkpoint and exit 143 and resume refuses changed data") {
  skip_without_mnist();
  std::string root = data_root("cli-sigterm");
  std::string out = scratch_dir("cli-sigterm-run");
  std::vector<std::string> args = {"train", "--config", interruptible_config("cli-sigterm-config"), "--data-dir",
                                   root, "--out", out, "--epochs", "1", "--set", "data.train_limit=6000"};
  bool sent = false;
  RunResult r = run_mnistctl(args, signal_at("Batch[10/", SIGTERM, sent));
  INFO(r.out << r.err);
  REQUIRE(sent);
  CHECK(r.code == 143);
  Checkpoint c = load_checkpoint(out + "/last.ckpt");
  CHECK(c.meta_int("batch", "") > 0);
  CHECK(c.meta_int("train_samples", "") == 6000);
  CHECK(c.meta_int("batch_size", "") == 64);
  // The position inside the epoch is only meaningful for the same data.
  RunResult changed = run_mnistctl({"train", "--out", out, "--data-dir", root, "--resume", "--set",
                                    "data.train_limit=5000"});
  CHECK(changed.code == 2);
  CHECK(changed.err.find("data.train_limit") != std::string::npos);
  // So is it only for the same order: another seed or no shuffling would show the rest of the
  // epoch some images twice and others never.
  RunResult seed = run_mnistctl({"train", "--out", out, "--data-dir", root, "--resume", "--seed", "7"});
  INFO(seed.err);
  CHECK(seed.code == 2);
  CHECK(seed.err.find("saved in the middle of an epoch") != std::string::npos);
  CHECK(seed.err.find("train.seed (was 42, now 7)") != std::string::npos);
  RunResult order = run_mnistctl({"train", "--out", out, "--data-dir", root, "--resume", "--set", "data.shuffle=false"});
  INFO(order.err);
  CHECK(order.code == 2);
  CHECK(order.err.find("data.shuffle (was true, now false)") != std::string::npos);
  CHECK(load_checkpoint(out + "/last.ckpt").meta_int("batch", "") == c.meta_int("batch", ""));  // untouched
  // A position past the end of the epoch is damage, not a run to skip silently.
  {
    Checkpoint far = c;
    far.meta["batch"] = "100000";
    const std::string other = scratch_dir("cli-sigterm-far");
    save_checkpoint(other + "/last.ckpt", far);
    RunResult past = run_mnistctl({"train", "--out", other, "--data-dir", root, "--resume"});
    INFO(past.err);
    CHECK(past.code == 2);
    CHECK(past.err.find("corrupt checkpoint: batch 100000 lies past the end of an epoch (6000 images at batch size 64)") !=
          std::string::npos);
  }
  CHECK(run_mnistctl({"train", "--out", out, "--data-dir", root, "--resume"}).code == 0);
}

TEST_CASE("CPU training is deterministic: the same seed gives bit-identical weights") {
  skip_without_mnist();
  std::string root = data_root("cli-determinism");
  std::string a = scratch_dir("cli-det-a"), b = scratch_dir("cli-det-b");
  REQUIRE(run_mnistctl(quick_mlp(root, a, 1, 3000)).code == 0);
  REQUIRE(run_mnistctl(quick_mlp(root, b, 1, 3000)).code == 0);
  require_same_weights(a + "/last.ckpt", b + "/last.ckpt");
}

TEST_CASE("a LeNet step on the CPU runs through the binary (one small epoch)") {
  skip_without_mnist();
  std::string root = data_root("cli-lenet");
  std::string out = scratch_dir("cli-lenet-run");
  RunResult r = run_mnistctl({"train", "--config", config_file("lenet.yaml"),
                              "--data-dir", root, "--out", out, "--epochs", "1", "--set", "data.train_limit=2000",
                              "--set", "data.test_limit=500", "--set", "init.type=xavier"});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex("Validation-accuracy=([0-9.]+)")));
  const double printed = std::stod(m[1]);
  std::ifstream jl(out + "/metrics.jsonl");
  double logged = -1;
  for (std::string line; std::getline(jl, line);)
    if (line.find("\"type\":\"epoch\"") != std::string::npos) logged = json_number(line, "val_accuracy");
  WARN("LeNet, one epoch of 2000 images: validation accuracy " << printed);
  CHECK(printed == Approx(logged).margin(1e-4));  // the line and the log say the same
  CHECK(printed > 0.6);  // chance is 0.1; this slice reaches about 0.77
}

TEST_CASE("bad input gives one line and the documented exit code") {
  std::string dir = scratch_dir("cli-errors");
  auto one_line = [](const RunResult& r) { return std::count(r.err.begin(), r.err.end(), '\n') == 1; };

  SECTION("a config with an unknown key: exit 2, file:line:col") {
    std::ofstream(dir + "/bad.yaml") << "network:\n  layers:\n    - {type: flatten}\ntrain:\n  learning_rat: 0.1\n";
    RunResult r = run_mnistctl({"train", "--config", dir + "/bad.yaml", "--dry-run"});
    CHECK(r.code == 2);
    CHECK(r.err.find("bad.yaml:5:") != std::string::npos);
    CHECK(one_line(r));
  }
  SECTION("a missing config file: exit 2") {
    RunResult r = run_mnistctl({"train", "--config", dir + "/nope.yaml"});
    CHECK(r.code == 2);
    CHECK(r.err.find("nope.yaml") != std::string::npos);
    CHECK(one_line(r));
  }
  SECTION("no data yet: exit 2, says to fetch") {
    RunResult r = run_mnistctl({"train", "--config", config_file("mlp.yaml"),
                                "--data-dir", dir + "/empty", "--out", dir + "/run"});
    CHECK(r.code == 2);
    CHECK(r.err.find("mnistctl fetch") != std::string::npos);
    CHECK(one_line(r));
  }
  SECTION("an unknown context: exit 2") {
    RunResult r = run_mnistctl({"eval", "--model", dir, "--ctx", "tpu"});
    CHECK(r.code == 2);
    CHECK(r.err.find("tpu") != std::string::npos);
  }
  SECTION("a missing or damaged checkpoint: exit 2, says what is wrong") {
    RunResult r = run_mnistctl({"eval", "--model", dir + "/none.ckpt"});
    CHECK(r.code == 2);
    CHECK(one_line(r));
    std::ofstream(dir + "/junk.ckpt") << "not a checkpoint at all";
    r = run_mnistctl({"eval", "--model", dir + "/junk.ckpt"});
    CHECK(r.code == 2);
    CHECK(r.err.find("not an mnistctl checkpoint") != std::string::npos);
  }
  SECTION("a bad option value: exit 2, one line in the tool's style") {
    RunResult r = run_mnistctl({"eval", "--model", dir, "--min-accuracy", "2"});
    CHECK(r.code == 2);
    CHECK(r.err.rfind("mnistctl: ", 0) == 0);
    CHECK(one_line(r));
    CHECK(run_mnistctl({"train", "--bogus"}).code == 2);
    CHECK(run_mnistctl({}).code == 2);
  }
  SECTION("a failed train leaves no run folder behind") {
    std::string mlp = config_file("mlp.yaml");
    CHECK(run_mnistctl({"train", "--config", mlp, "--data-dir", dir + "/empty", "--out", dir + "/r1"}).code == 2);
    CHECK(run_mnistctl({"train", "--config", mlp, "--ctx", "tpu", "--out", dir + "/r2"}).code == 2);
    CHECK(!fs::exists(dir + "/r1"));
    CHECK(!fs::exists(dir + "/r2"));
  }
  SECTION("--dry-run makes the checks a real run makes") {
    std::string mlp = config_file("mlp.yaml");
    RunResult r = run_mnistctl({"train", "--config", mlp, "--dry-run", "--set", "network.layers.6.type=flatten"});
    CHECK(r.code == 2);
    CHECK(r.err.find("softmax_output") != std::string::npos);
    r = run_mnistctl({"train", "--config", mlp, "--dry-run", "--set", "network.layers.5.num_hidden=7"});
    CHECK(r.code == 2);
    CHECK(r.err.find("10 classes") != std::string::npos);
    r = run_mnistctl({"train", "--config", mlp, "--dry-run"});
    CHECK(r.code == 0);
    CHECK(r.out.find("total parameters: 109386") != std::string::npos);
    CHECK(r.out.find("sgd at learning rate 0.1") != std::string::npos);
  }

}

TEST_CASE("a diverging run stops with exit 3 and names the epoch and batch") {
  skip_without_mnist();
  std::string root = data_root("cli-nan");
  std::string out = scratch_dir("cli-nan-run");
  // Weight decay of 1 at learning rate 10 multiplies every weight by -9 per step: the
  // weights overflow within a few dozen batches.
  auto args = quick_mlp(root, out, 1, 6000);
  args.insert(args.end(), {"--set", "train.learning_rate=10", "--set", "train.weight_decay=1"});
  RunResult r = run_mnistctl(args);
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  CHECK(std::regex_search(r.err, std::regex("loss became (NaN|infinite) in epoch 1 by batch [0-9]+")));
}

// train.cuda_graphs on a backend without graphs (the CPU): said once, and the run is the
// eager run exactly. The recipe has dropout (masks from the step counter), momentum and a
// smaller last batch, everything the graph path treats specially.
TEST_CASE("train.cuda_graphs on the CPU says so once and trains exactly as without it") {
  skip_without_mnist();
  std::string root = data_root("cli-cuda-graphs");
  std::string dir = scratch_dir("cli-cuda-graphs-runs");
  std::string cfg = write_conv_dropout_config(dir, 4);
  auto train = [&](const std::string& out, const std::string& graphs) {
    return run_mnistctl({"train", "--config", cfg, "--data-dir", root, "--out", out, "--epochs", "2", "--set",
                         "data.train_limit=1000", "--set", "data.test_limit=200", "--set",
                         "train.cuda_graphs=" + graphs});
  };
  RunResult off = train(dir + "/off", "false");
  RunResult on = train(dir + "/on", "true");
  INFO(off.out << off.err << on.out << on.err);
  REQUIRE(off.code == 0);
  REQUIRE(on.code == 0);
  const std::string said = "train.cuda_graphs: cpu";
  size_t at = on.out.find(said);
  REQUIRE(at != std::string::npos);
  CHECK(on.out.find("has no CUDA graphs; every step runs eagerly") != std::string::npos);
  CHECK(on.out.find(said, at + 1) == std::string::npos);  // once
  CHECK(off.out.find("cuda_graphs") == std::string::npos);
  require_same_weights(dir + "/off/last.ckpt", dir + "/on/last.ckpt");
  require_same_weights(dir + "/off/checkpoints/epoch-001.ckpt", dir + "/on/checkpoints/epoch-001.ckpt");
}
