// ONNX export: the graph writer's mapping table and checks (unit), then end to end through
// the binary on small runs trained on real MNIST: each exported model passes the ONNX checker
// and ONNX Runtime (onnxruntime-node, installed by the "install onnxruntime-node" fixture)
// gives the same class as `mnistctl predict` for all 10,000 test images, with probabilities
// within 1e-5, at batch sizes 1, 257 (and a smaller last batch) and 10,000.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "config/config.h"
#include "core/error.h"
#include "export/onnx_export.h"
#include "nn/registry.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

// Every layer type and option the exporter maps: padded convolution without bias, average
// pooling with padding (counted), max pooling with padding, tanh, relu, softrelu, two
// dropouts, fully_connected on a CHW input (implicit flatten), flatten, fc without bias.
// (The MLP test swaps a relu for sigmoid.)
const char* kAllOpsYaml = R"(name: allops
data: {dataset: mnist}
network:
  input: [1, 28, 28]
  layers:
    - {type: convolution, name: conv1, kernel: 3, num_filter: 8, pad: 1, no_bias: true}
    - {type: activation, name: tanh1, act_type: tanh}
    - {type: pooling, name: pool1, pool_type: avg, kernel: 3, stride: 2, pad: 1}
    - {type: convolution, name: conv2, kernel: [3, 3], num_filter: 16, stride: 2}
    - {type: activation, name: relu2, act_type: relu}
    - {type: pooling, name: pool2, pool_type: max, kernel: 3, stride: 1, pad: 1}
    - {type: dropout, name: drop1, p: 0.2}
    - {type: fully_connected, name: fc1, num_hidden: 64}
    - {type: activation, name: soft1, act_type: softrelu}
    - {type: dropout, name: drop2, p: 0.2}
    - {type: flatten, name: flat}
    - {type: fully_connected, name: fc2, num_hidden: 10, no_bias: true}
    - {type: softmax_output, name: softmax}
init: {type: xavier}
train: {batch_size: 32, epochs: 1, seed: 7, log_interval: 0, optimizer: sgd, learning_rate: 0.1, momentum: 0.9}
)";

// A checkpoint holding every parameter of `net` (small deterministic values).
Checkpoint fake_checkpoint(const Network& net) {
  Checkpoint c;
  for (const auto& l : net.layers())
    for (const Param& p : l->params()) {
      NamedTensor t{"param/" + p.name, p.shape, std::vector<float>(static_cast<size_t>(p.shape.numel()))};
      for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<float>((i % 17) - 8) * 0.01f;
      c.tensors.push_back(std::move(t));
    }
  return c;
}

}  // namespace

TEST_CASE("every registered layer type has an ONNX mapping", "[unit]") {
  const OnnxMappingTable& table = onnx_mappings();
  for (const auto& type : LayerRegistry::types()) {
    INFO("layer type " << type);
    CHECK(table.count(type) == 1);
  }
  CHECK(table.size() == LayerRegistry::types().size());
}

TEST_CASE("the graph: standard operators, symbolic batch, checker-clean, same bytes twice", "[unit]") {
  Config cfg = load_config_text(kAllOpsYaml, "allops.yaml");
  Network net(cfg.network);
  Checkpoint ckpt = fake_checkpoint(net);
  OnnxExportSpec spec;
  spec.metadata = {{"mnistctl_version", "9.9.9"}, {"dataset", "mnist"}};
  std::string a = export_onnx(net, ckpt, "fake.ckpt", spec);
  CHECK_NOTHROW(check_onnx_bytes(a, "fake.onnx"));
  CHECK(export_onnx(net, ckpt, "fake.ckpt", spec) == a);

  OnnxSummary s = summarize_onnx(a, "fake.onnx");
  CHECK(s.ir_version == kOnnxIrVersion);
  CHECK(s.opset == kOnnxOpset);
  CHECK(s.producer == "mnistctl 9.9.9");
  // dropout is removed; fc1 reads a CHW input, so a Flatten comes before its Gemm.
  CHECK(s.ops == std::vector<std::string>{"Conv", "Tanh", "AveragePool", "Conv", "Relu", "MaxPool", "Flatten",
                                          "Gemm", "Softplus", "Flatten", "Gemm", "Softmax"});
  CHECK(s.inputs == std::vector<std::string>{"input:[N,1,28,28]"});
  CHECK(s.outputs == std::vector<std::string>{"probabilities:[N,10]"});
  CHECK(s.metadata.at("dataset") == "mnist");

  spec.logits = true;
  OnnxSummary sl = summarize_onnx(export_onnx(net, ckpt, "fake.ckpt", spec), "fake.onnx");
  CHECK(sl.outputs == std::vector<std::string>{"probabilities:[N,10]", "logits:[N,10]"});
  CHECK(sl.ops.back() == "Softmax");
}

TEST_CASE("a layer type without a mapping is refused with one line naming it", "[unit]") {
  Config cfg = load_config_text(kAllOpsYaml, "allops.yaml");
  Network net(cfg.network);
  Checkpoint ckpt = fake_checkpoint(net);
  OnnxMappingTable table = onnx_mappings();
  table.erase("pooling");
  try {
    export_onnx(net, ckpt, "fake.ckpt", OnnxExportSpec{}, table);
    FAIL("export_onnx accepted a layer type without a mapping");
  } catch (const Error& e) {
    std::string m = e.what();
    INFO(m);
    CHECK(e.code() == kExitUsage);
    CHECK(m == "fake.ckpt: layer 'pool1' has type 'pooling', which has no ONNX mapping");
  }
}

TEST_CASE("a checkpoint without a parameter, or with a misshapen one, is refused naming it", "[unit]") {
  Config cfg = load_config_text(kAllOpsYaml, "allops.yaml");
  Network net(cfg.network);
  Checkpoint ckpt = fake_checkpoint(net);
  Checkpoint missing = ckpt;
  missing.tensors.erase(missing.tensors.begin() + 2);  // conv1.weight, conv2.weight, conv2.bias, ...
  CHECK_THROWS_WITH(export_onnx(net, missing, "x.ckpt", OnnxExportSpec{}),
                    "x.ckpt: checkpoint has no parameter 'conv2.bias'");
  Checkpoint bent = ckpt;
  bent.tensors[0].shape = Shape{8, 1, 9};
  CHECK_THROWS_WITH(export_onnx(net, bent, "x.ckpt", OnnxExportSpec{}),
                    Catch::Contains("parameter 'conv1.weight' has shape") && Catch::Contains("expects"));
}

TEST_CASE("check_onnx_bytes rejects what is not a valid model", "[unit]") {
  CHECK_THROWS_WITH(check_onnx_bytes("\xff\xff\xff not protobuf", "junk.onnx"), Catch::Contains("junk.onnx"));
}

// ---------------------------------------------------------------------------------------
// End to end: real MNIST, the real binary, ONNX Runtime.

namespace {

// Trains a short run (a slice of the training set, validation on the first 2,000 test images).
std::string train(const std::string& root, const std::string& config, const std::string& name, int limit,
                  int epochs = 1, const std::vector<std::string>& sets = {}) {
  std::string out = root + "/" + name;
  std::vector<std::string> args = {"train", "--config", config, "--data-dir", root, "--out", out, "--epochs",
                                   std::to_string(epochs), "--threads", "2", "--set", "init.type=xavier", "--set",
                                   "data.train_limit=" + std::to_string(limit), "--set", "data.test_limit=2000",
                                   "--set", "train.log_interval=0"};
  for (const auto& s : sets) args.insert(args.end(), {"--set", s});
  RunResult r = run_mnistctl(args);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct OrtRun {
  std::string summary;        // ort_run.js's JSON line
  std::vector<float> probs;   // count x 10
};

OrtRun run_ort(const std::string& model, const std::string& out, int batch) {
  std::string images = mnist_dir() + "/t10k-images-idx3-ubyte.gz";
  std::string cmd = "NODE_PATH=" + shell_quote(std::string(MNISTCTL_ORT_DIR) + "/node_modules") + " node " +
                    shell_quote(MNISTCTL_ORT_SCRIPT) + " " + shell_quote(model) + " " + shell_quote(images) + " " +
                    shell_quote(out) + " " + std::to_string(batch) + " 2>&1";
  OrtRun r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.summary.append(buf, n);
  int status = pclose(p);
  INFO(cmd << "\n" << r.summary);
  REQUIRE(status == 0);
  std::string bytes = read_text(out);
  REQUIRE(bytes.size() == 10000u * 10u * sizeof(float));
  r.probs.resize(bytes.size() / sizeof(float));
  std::memcpy(r.probs.data(), bytes.data(), bytes.size());
  return r;
}

struct Prediction {
  int predicted = -1;
  std::vector<double> probs;
};

// `mnistctl predict --format json` over the whole test set.
std::vector<Prediction> predict(const std::string& root, const std::string& run) {
  std::string out = run + "/predict.json";
  RunResult r = run_mnistctl({"predict", "--model", run, "--data-dir", root, "--format", "json", "--threads", "2",
                              "--output", out});
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::ifstream in(out);
  std::vector<Prediction> rows;
  static const std::regex kRow("\"predicted\":([0-9]+),\"probabilities\":\\[([^\\]]*)\\]");
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (!std::regex_search(line, m, kRow)) continue;
    Prediction p;
    p.predicted = std::stoi(m[1]);
    std::stringstream ss(m[2].str());
    std::string field;
    while (std::getline(ss, field, ',')) p.probs.push_back(std::strtod(field.c_str(), nullptr));
    rows.push_back(std::move(p));
  }
  REQUIRE(rows.size() == 10000u);
  return rows;
}

// The same class for every image, and max |p_onnx - p_mnistctl| <= 1e-5 (NaN fails).
void compare(const std::vector<Prediction>& want, const OrtRun& got, const std::string& what) {
  double max_diff = 0.0;
  int class_mismatches = 0, first_mismatch = -1;
  std::set<int> classes_seen;  // a model that learned predicts (nearly) every class
  for (size_t i = 0; i < want.size(); ++i) {
    REQUIRE(want[i].probs.size() == 10u);
    const float* row = got.probs.data() + i * 10;
    int best = 0;
    for (int c = 1; c < 10; ++c)
      if (row[c] > row[best]) best = c;
    if (best != want[i].predicted && class_mismatches++ == 0) first_mismatch = static_cast<int>(i);
    classes_seen.insert(want[i].predicted);
    for (int c = 0; c < 10; ++c) {
      double d = std::fabs(static_cast<double>(row[c]) - want[i].probs[static_cast<size_t>(c)]);
      if (!(d <= max_diff)) max_diff = d;  // a NaN makes max_diff NaN, which fails below
    }
  }
  std::printf("%s: ONNX Runtime vs mnistctl predict over 10000 test images: %d class mismatches, max abs "
              "probability difference %.3g\n",
              what.c_str(), class_mismatches, max_diff);
  INFO(what << ": first mismatch at image " << first_mismatch << "; max abs difference " << max_diff);
  CHECK(class_mismatches == 0);
  CHECK(max_diff <= 1e-5);
  CHECK(classes_seen.size() >= 8u);  // not a degenerate model whose rows all look alike
}

std::string export_model(const std::string& run, const std::string& out, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"export", "--model", run, "--output", out};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult r = run_mnistctl(args);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  REQUIRE(fs::exists(out));
  check_onnx_bytes(read_text(out), out);  // the ONNX checker, on the file as written
  return read_text(out);
}

}  // namespace

TEST_CASE("MLP: ONNX Runtime agrees with mnistctl predict on the whole test set, batch 257", "[ort]") {
  std::string root = data_root("export-mlp");
  std::string run = train(root, config_file("mlp.yaml"), "mlp", 6000, 1,
                          {"network.layers.2.act_type=sigmoid", "train.momentum=0.9"});
  std::string onnx = root + "/mlp.onnx";
  OnnxSummary s = summarize_onnx(export_model(run, onnx, {"--logits"}), onnx);
  CHECK(s.ops == std::vector<std::string>{"Flatten", "Gemm", "Sigmoid", "Gemm", "Relu", "Gemm", "Identity", "Softmax"});
  OrtRun o = run_ort(onnx, root + "/mlp.f32", 257);
  INFO(o.summary);
  CHECK_THAT(o.summary, Catch::Contains(R"("inputs":["input"],"outputs":["probabilities","logits"])"));
  // 10,000 = 38 x 257 + 234: the symbolic batch took both sizes.
  CHECK_THAT(o.summary, Catch::Contains(R"("dims":["257x10","234x10"])"));
  std::smatch m;
  std::string summary = o.summary;
  REQUIRE(std::regex_search(summary, m, std::regex("\"max_logit_gap\":([0-9.eE+-]+)")));
  CHECK(std::stod(m[1]) <= 1e-6);  // logits are the Softmax's input
  compare(predict(root, run), o, "mlp");
}

TEST_CASE("LeNet: ONNX Runtime agrees with mnistctl predict on the whole test set, batch 1", "[ort]") {
  std::string root = data_root("export-lenet");
  std::string run = train(root, config_file("lenet.yaml"), "lenet", 3000);
  std::string onnx = root + "/lenet.onnx";
  OnnxSummary s = summarize_onnx(export_model(run, onnx), onnx);
  CHECK(s.ops == std::vector<std::string>{"Conv", "Tanh", "MaxPool", "Conv", "Tanh", "MaxPool", "Flatten", "Gemm",
                                          "Tanh", "Gemm", "Softmax"});
  OrtRun o = run_ort(onnx, root + "/lenet.f32", 1);
  INFO(o.summary);
  CHECK_THAT(o.summary, Catch::Contains(R"("outputs":["probabilities"])"));
  CHECK_THAT(o.summary, Catch::Contains(R"("dims":["1x10"])"));
  compare(predict(root, run), o, "lenet");
}

TEST_CASE("dropout and every operator option: ONNX Runtime agrees with predict, one batch of 10000", "[ort]") {
  std::string root = data_root("export-allops");
  std::string cfg = root + "/allops.yaml";
  std::ofstream(cfg) << kAllOpsYaml;
  std::string run = train(root, cfg, "allops", 3000);
  std::string onnx = root + "/allops.onnx";
  OnnxSummary s = summarize_onnx(export_model(run, onnx), onnx);
  for (const auto& op : s.ops) CHECK(op != "Dropout");
  OrtRun o = run_ort(onnx, root + "/allops.f32", 10000);
  INFO(o.summary);
  CHECK_THAT(o.summary, Catch::Contains(R"("dims":["10000x10"])"));
  compare(predict(root, run), o, "allops (dropout)");
}

TEST_CASE("export metadata, identical bytes on re-export, --checkpoint best", "[cli]") {
  std::string root = data_root("export-meta");
  std::string run = train(root, config_file("mlp.yaml"), "mlp", 2000, 2);
  std::string a = export_model(run, root + "/a.onnx");
  std::string b = export_model(run + "/last.ckpt", root + "/b.onnx");
  CHECK(a == b);  // the run folder and its last.ckpt, exported twice: the same bytes

  OnnxSummary s = summarize_onnx(a, "a.onnx");
  std::string metrics = read_text(run + "/metrics.jsonl");
  const std::regex epoch_re("\"epoch\":([0-9]+),[^\n]*\"val_accuracy\":([0-9.]+)");
  std::vector<std::pair<int, std::string>> acc;  // (epoch, val_accuracy)
  for (std::sregex_iterator it(metrics.begin(), metrics.end(), epoch_re), end; it != end; ++it)
    acc.emplace_back(std::stoi((*it)[1]), (*it)[2]);
  REQUIRE(acc.size() == 2u);
  CHECK(s.metadata.at("mnistctl_version") == "0.1.0");
  CHECK(s.producer == "mnistctl 0.1.0");
  CHECK(s.metadata.at("dataset") == "mnist");
  CHECK(s.metadata.at("class_names") == R"(["0","1","2","3","4","5","6","7","8","9"])");
  CHECK(s.metadata.at("epoch") == "2");
  CHECK(s.metadata.at("test_accuracy") == acc[1].second);
  CHECK(s.metadata.at("test_images") == "2000");

  // A checkpoint outside its run folder: the accuracy is not known.
  fs::copy_file(run + "/checkpoints/epoch-001.ckpt", root + "/loose.ckpt");
  OnnxSummary loose = summarize_onnx(export_model(root + "/loose.ckpt", root + "/loose.onnx"), "loose.onnx");
  CHECK(loose.metadata.at("epoch") == "1");
  CHECK(loose.metadata.at("test_accuracy") == "unknown");

  // best: the epoch with the highest val_accuracy.
  const auto& best = std::stod(acc[0].second) >= std::stod(acc[1].second) ? acc[0] : acc[1];
  OnnxSummary sb = summarize_onnx(export_model(run, root + "/best.onnx", {"--checkpoint", "best"}), "best.onnx");
  CHECK(sb.metadata.at("epoch") == std::to_string(best.first));
  CHECK(sb.metadata.at("test_accuracy") == best.second);
}

TEST_CASE("export never replaces a file without --force, and bad usage is one line and exit 2", "[cli]") {
  std::string root = data_root("export-usage");
  std::string run = train(root, config_file("mlp.yaml"), "mlp", 1000);
  std::string out = root + "/model.onnx";
  std::ofstream(out) << "the user's file";
  RunResult r = run_mnistctl({"export", "--model", run, "--output", out});
  CHECK(r.code == 2);
  CHECK(r.err == "mnistctl: " + out + ": already exists; pass --force to replace it\n");
  CHECK(read_text(out) == "the user's file");
  r = run_mnistctl({"export", "--model", run, "--output", out, "--force"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK_NOTHROW(check_onnx_bytes(read_text(out), out));
  // --checkpoint FILE of the run, as for eval and predict.
  RunResult e1 = run_mnistctl({"export", "--model", run, "--checkpoint", "checkpoints/epoch-001.ckpt", "--output",
                               root + "/e1.onnx"});
  INFO(e1.err);
  CHECK(e1.code == 0);
  CHECK(e1.out.find("checkpoints/epoch-001.ckpt (epoch 1,") != std::string::npos);
  CHECK_NOTHROW(check_onnx_bytes(read_text(root + "/e1.onnx"), "e1.onnx"));
  for (const auto& name : fs::directory_iterator(root))  // the atomic write left no temporary behind
    CHECK(name.path().filename().string().find(".tmp") == std::string::npos);
  // --force never replaces the checkpoint it reads or another of the run's own files.
  const std::string last = read_text(run + "/last.ckpt");
  RunResult read_ckpt = run_mnistctl({"export", "--model", run, "--output", run + "/last.ckpt", "--format", "onnx",
                                      "--force"});
  CHECK(read_ckpt.code == 2);
  CHECK(read_ckpt.err == "mnistctl: --output " + run + "/last.ckpt: is the same file as the input " + run +
                             "/last.ckpt; give another --output\n");
  for (const char* name : {"best.ckpt", "checkpoints/epoch-001.ckpt", "metrics.csv"}) {
    RunResult own = run_mnistctl({"export", "--model", run, "--output", run + "/" + name, "--format", "onnx", "--force"});
    CHECK(own.code == 2);
    CHECK(own.err == "mnistctl: --output " + run + "/" + name + ": is the " + name + " of the run in " + run +
                         "; a run's own files are not replaced, --force or not (give a path outside them)\n");
  }
  CHECK(read_text(run + "/last.ckpt") == last);
  fs::copy_file(run + "/last.ckpt", root + "/alone.ckpt");
  RunResult self = run_mnistctl({"export", "--model", root + "/alone.ckpt", "--output", root + "/alone.ckpt", "--format",
                                 "onnx", "--force"});
  CHECK(self.code == 2);
  CHECK(self.err == "mnistctl: --output " + root + "/alone.ckpt: is the same file as the input " + root +
                        "/alone.ckpt; give another --output\n");
  CHECK(read_text(root + "/alone.ckpt") == last);

  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  std::vector<Case> cases = {
      {{"export", "--model", run, "--output", root + "/m.bin"}, "cannot tell the format from the extension"},
      {{"export", "--model", run + "/last.ckpt", "--checkpoint", "best", "--output", root + "/m.onnx"},
       "is not a run folder"},
      {{"export", "--model", root + "/nope", "--output", root + "/m.onnx"}, "no such checkpoint file or run folder"},
      {{"export", "--output", root + "/m.onnx"}, "export needs --model"},
      {{"export", "--model", run}, "export needs --output"},
      {{"export", "--model", run, "--output", root + "/m.onnx", "--format", "tflite"}, "tflite"},
      // A folder: said at once, with or without --force (not "already exists; pass --force").
      {{"export", "--model", run, "--output", root, "--format", "onnx"}, "is a folder, expected a file name"},
      {{"export", "--model", run, "--output", root, "--force"}, "is a folder, expected a file name"},
      {{"export", "--model", root + "/model.onnx", "--output", root + "/m.onnx"}, "model.onnx"},  // not a checkpoint
  };
  for (const auto& c : cases) {
    RunResult e = run_mnistctl(c.args);
    INFO(c.args.back() << ": " << e.err);
    CHECK(e.code == 2);
    CHECK_THAT(e.err, Catch::Contains(c.err));
    CHECK(std::count(e.err.begin(), e.err.end(), '\n') == 1);
    CHECK(!fs::exists(root + "/m.onnx"));
  }

  // The extension's case does not matter (as for predict's .CSV/.JSON).
  RunResult upper = run_mnistctl({"export", "--model", run, "--output", root + "/Model.ONNX"});
  INFO(upper.err);
  CHECK(upper.code == 0);
  CHECK(read_text(root + "/Model.ONNX").size() > 1000);

  RunResult h = run_mnistctl({"export", "--help"});
  CHECK(h.code == 0);
  CHECK_THAT(h.out, Catch::Contains("--checkpoint") && Catch::Contains("opset 13") && Catch::Contains("Examples"));
}
