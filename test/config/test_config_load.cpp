// The config loader: the shipped configs, defaults, and every class of error with its
// exact file:line:col and message.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "config/config.h"
#include "config_test_util.h"
#include "core/error.h"
#include "test_util.h"

using namespace mnistctl;
using mnistctl::test::kTinyNet;
using mnistctl::test::load_error;

TEST_CASE("configs/lenet.yaml loads as the MXNet tutorial's LeNet", "[config]") {
  Config c = load_config_file(test::config_file("lenet.yaml"));
  CHECK(c.name == "lenet");
  CHECK(c.source == test::config_file("lenet.yaml"));
  CHECK(c.data.dataset == "mnist");
  CHECK(c.network.input == Shape{1, 28, 28});
  std::vector<std::string> types, names;
  for (const auto& l : c.network.layers) {
    types.push_back(l.type);
    names.push_back(l.name);
  }
  CHECK(types == std::vector<std::string>{"convolution", "activation", "pooling", "convolution",
                                          "activation", "pooling", "flatten", "fully_connected",
                                          "activation", "fully_connected", "softmax_output"});
  CHECK(names == std::vector<std::string>{"conv1", "tanh1", "pool1", "conv2", "tanh2", "pool2",
                                          "flatten", "fc1", "tanh3", "fc2", "softmax"});
  const SpecNode& conv1 = c.network.layers[0].node;
  CHECK(conv1.require_pair("kernel", 1, 64) == std::array<int64_t, 2>{5, 5});
  CHECK(conv1.require_int("num_filter", 1, 4096) == 20);
  CHECK(c.network.layers[2].node.get_pair("stride", {1, 1}, 1, 64) == std::array<int64_t, 2>{2, 2});
  CHECK(c.network.layers[7].node.require_int("num_hidden", 1, 1 << 20) == 500);
  CHECK(c.network.layers[1].node.get_enum("act_type", "", {"relu", "tanh"}) == "tanh");
  CHECK(c.init.type == "uniform");
  CHECK(c.init.scale == 0.01);
  CHECK(c.train.batch_size == 100);
  CHECK(c.train.epochs == 10);
  CHECK(c.train.seed == 42);
  CHECK(c.train.optimizer.type == "sgd");
  CHECK(c.train.optimizer.learning_rate == 0.1);
  CHECK(c.train.lr_schedule.type == "fixed");
}

TEST_CASE("configs/mlp.yaml loads as the MXNet tutorial's MLP", "[config]") {
  Config c = load_config_file(test::config_file("mlp.yaml"));
  CHECK(c.name == "mlp");
  REQUIRE(c.network.layers.size() == 7);
  CHECK(c.network.layers[0].type == "flatten");
  CHECK(c.network.layers[1].node.require_int("num_hidden", 1, 1 << 20) == 128);
  CHECK(c.network.layers[3].node.require_int("num_hidden", 1, 1 << 20) == 64);
  CHECK(c.network.layers[5].node.require_int("num_hidden", 1, 1 << 20) == 10);
  CHECK(c.network.layers[2].node.get_enum("act_type", "", {"relu", "tanh"}) == "relu");
  CHECK(c.network.layers[6].type == "softmax_output");
}

TEST_CASE("builtin_lenet_yaml() is configs/lenet.yaml byte for byte", "[config]") {
  std::string file = test::read_text(test::config_file("lenet.yaml"));
  REQUIRE(!file.empty());
  CHECK(builtin_lenet_yaml() == file);
  Config c = load_config_text(builtin_lenet_yaml(), "<built-in lenet.yaml>");
  CHECK(c.source == "<built-in lenet.yaml>");
  CHECK(c.name == "lenet");
  CHECK(c.network.layers.size() == 11);
}

TEST_CASE("every section is optional except network.layers and defaults are config.h's", "[config]") {
  Config c = load_config_text(kTinyNet, "some/dir/my-net.yaml");
  const Config d;  // the struct defaults
  CHECK(c.name == "my-net");  // the file's stem
  CHECK(c.source == "some/dir/my-net.yaml");
  CHECK(c.data.dataset == d.data.dataset);
  CHECK(c.data.train_limit == 0);
  CHECK(c.data.test_limit == 0);
  CHECK(c.data.shuffle == true);
  CHECK(c.network.input == Shape{1, 28, 28});
  REQUIRE(c.network.layers.size() == 1);
  CHECK(c.network.layers[0].type == "flatten");
  CHECK(c.network.layers[0].name == "flatten0");
  CHECK(c.init.type == d.init.type);
  CHECK(c.init.scale == d.init.scale);
  CHECK(c.init.sigma == d.init.sigma);
  CHECK(c.init.rnd_type == d.init.rnd_type);
  CHECK(c.init.factor_type == d.init.factor_type);
  CHECK(c.init.magnitude == d.init.magnitude);
  CHECK(c.train.batch_size == d.train.batch_size);
  CHECK(c.train.epochs == d.train.epochs);
  CHECK(c.train.seed == d.train.seed);
  CHECK(c.train.log_interval == d.train.log_interval);
  CHECK(c.train.deterministic == false);
  CHECK(c.train.allow_tf32 == false);
  CHECK(c.train.optimizer.type == "sgd");
  CHECK(c.train.optimizer.learning_rate == d.train.optimizer.learning_rate);
  CHECK(c.train.optimizer.momentum == 0.0);
  CHECK(c.train.optimizer.weight_decay == 0.0);
  CHECK(c.train.optimizer.beta1 == d.train.optimizer.beta1);
  CHECK(c.train.optimizer.beta2 == d.train.optimizer.beta2);
  CHECK(c.train.optimizer.epsilon == d.train.optimizer.epsilon);
  CHECK(c.train.lr_schedule.type == "fixed");
  CHECK(c.train.lr_schedule.factor == d.train.lr_schedule.factor);
  CHECK(c.train.lr_schedule.step_epochs == 1);
  CHECK(c.train.lr_schedule.min_lr == 0.0);

  // A section written with nothing under it is empty, not an error.
  Config e = load_config_text(std::string(kTinyNet) + "init:\ntrain:\n", "t.yaml");
  CHECK(e.init.type == "uniform");
  CHECK(e.train.epochs == 10);
}

TEST_CASE("every config field is read", "[config]") {
  Config c = load_config_text(R"(name: full.v2
data: {dataset: fashion-mnist, train_limit: 1000, test_limit: 500, shuffle: false}
network:
  input: [784]
  layers:
    - {type: fully_connected, num_hidden: 10}
    - {type: softmax_output, name: out}
init: {type: xavier, scale: 0.5, sigma: 0.2, rnd_type: gaussian, factor_type: in, magnitude: 2.34}
train:
  batch_size: 64
  epochs: 3
  seed: 4611686018427387904
  log_interval: 0
  deterministic: true
  allow_tf32: True
  optimizer: adam
  learning_rate: 1e-3
  momentum: 0.9
  weight_decay: 5e-4
  beta1: 0.8
  beta2: 0.99
  epsilon: 1e-7
  lr_schedule: {type: cosine, factor: 0.5, step_epochs: 2, min_lr: 0.0001}
)",
                              "t.yaml");
  CHECK(c.name == "full.v2");
  CHECK(c.data.dataset == "fashion-mnist");
  CHECK(c.data.train_limit == 1000);
  CHECK(c.data.test_limit == 500);
  CHECK(c.data.shuffle == false);
  CHECK(c.network.input == Shape{784});
  CHECK(c.network.layers[0].name == "fully_connected0");
  CHECK(c.network.layers[1].name == "out");
  CHECK(c.init.type == "xavier");
  CHECK(c.init.scale == 0.5);
  CHECK(c.init.sigma == 0.2);
  CHECK(c.init.rnd_type == "gaussian");
  CHECK(c.init.factor_type == "in");
  CHECK(c.init.magnitude == 2.34);
  CHECK(c.train.batch_size == 64);
  CHECK(c.train.epochs == 3);
  CHECK(c.train.seed == (int64_t(1) << 62));
  CHECK(c.train.log_interval == 0);
  CHECK(c.train.deterministic == true);
  CHECK(c.train.allow_tf32 == true);
  CHECK(c.train.optimizer.type == "adam");
  CHECK(c.train.optimizer.learning_rate == 1e-3);
  CHECK(c.train.optimizer.momentum == 0.9);
  CHECK(c.train.optimizer.weight_decay == 5e-4);
  CHECK(c.train.optimizer.beta1 == 0.8);
  CHECK(c.train.optimizer.beta2 == 0.99);
  CHECK(c.train.optimizer.epsilon == 1e-7);
  CHECK(c.train.lr_schedule.type == "cosine");
  CHECK(c.train.lr_schedule.factor == 0.5);
  CHECK(c.train.lr_schedule.step_epochs == 2);
  CHECK(c.train.lr_schedule.min_lr == 0.0001);
}

TEST_CASE("the optimizer is named in train and its settings sit beside it", "[config]") {
  const std::string net = kTinyNet;
  Config c = load_config_text(net + "train: {optimizer: adam, learning_rate: 0.002, beta1: 0.5}\n", "t.yaml");
  CHECK(c.train.optimizer.type == "adam");
  CHECK(c.train.optimizer.learning_rate == 0.002);
  CHECK(c.train.optimizer.beta1 == 0.5);
  CHECK(c.train.optimizer.beta2 == OptimizerSpec().beta2);
  // Settings another optimizer uses are accepted (and ignored by this one), so switching
  // `optimizer` needs no other edit.
  Config s = load_config_text(net + "train:\n  optimizer: sgd\n  momentum: 0.9\n  beta1: 0.5\n", "t.yaml");
  CHECK(s.train.optimizer.type == "sgd");
  CHECK(s.train.optimizer.momentum == 0.9);
  // A learning_rate without `optimizer` is the default optimizer's.
  Config d = load_config_text(net + "train:\n  learning_rate: 0.05\n", "t.yaml");
  CHECK(d.train.optimizer.type == "sgd");
  CHECK(d.train.optimizer.learning_rate == 0.05);
  // cosine may end exactly at the learning rate.
  Config e = load_config_text(net + "train:\n  learning_rate: 0.01\n  lr_schedule: {type: cosine, min_lr: 0.01}\n",
                              "t.yaml");
  CHECK(e.train.lr_schedule.min_lr == 0.01);
  // The old nested layout is an error at the mapping, not silently ignored.
  CHECK(load_error(net + "train:\n  optimizer:\n    type: adam\n    learning_rate: 0.001\n") ==
        "t.yaml:6:5: train.optimizer: expected one of sgd, adam; got a mapping");
}

TEST_CASE("YAML syntax errors and non-mapping or empty files", "[config][errors]") {
  CHECK(load_error("network:\n  input: [1, 28\ntrain: {}\n") ==
        "t.yaml:3:6: YAML syntax error: end of sequence flow not found");
  CHECK(load_error("train:\n  epochs: 3\n bad: 1\n") ==
        "t.yaml:3:2: YAML syntax error: end of map not found");
  CHECK(load_error("- {type: flatten}\n") ==
        "t.yaml:1:1: expected a mapping (name, data, network, init, train) at the top, got a list");
  CHECK(load_error("just words\n") ==
        "t.yaml:1:1: expected a mapping (name, data, network, init, train) at the top, got 'just words'");
  CHECK(load_error("") == "t.yaml:1:1: the config is empty; expected a mapping with at least network.layers");
  CHECK(load_error("# only a comment\n\n") ==
        "t.yaml:1:1: the config is empty; expected a mapping with at least network.layers");
  CHECK(load_error(std::string(kTinyNet) + "---\nname: x\n") ==
        "t.yaml:4:1: a second YAML document; a config is one document");
  CHECK(load_error(std::string(kTinyNet) + "train:\n  epochs: 3\n  epochs: 4\n") ==
        "t.yaml:6:3: duplicate key 'epochs' (first at line 5)");
  CHECK(load_error(std::string(kTinyNet) + "? [a, b]\n: 1\n") ==
        "t.yaml:4:3: a mapping key must be a plain name, not a list");
  // A merge key would read as a field named "<<", then as a layer without its type.
  CHECK(load_error("network:\n  layers:\n    - &fc {type: fully_connected, num_hidden: 10}\n"
                   "    - {<<: *fc, name: fc2}\n    - {type: softmax_output}\n") ==
        "t.yaml:4:8: merge keys ('<<: *anchor') are not supported: write the fields out");
  // The core schema's tags say what a plain or quoted scalar says; any other is refused.
  CHECK(load_config_text(std::string(kTinyNet) + "train:\n  epochs: !!int 3\n", "t.yaml").train.epochs == 3);
  CHECK(load_error(std::string(kTinyNet) + "train:\n  epochs: !!str 3\n") ==
        "t.yaml:5:11: train.epochs: expected an integer from 1 to 100000, got the string \"3\"");
  CHECK(load_error(std::string(kTinyNet) + "train:\n  epochs: !big 3\n") ==
        "t.yaml:5:11: unsupported tag !big (the config's values take no tag, or one of !!str, !!int, !!float, "
        "!!bool, !!null)");
  CHECK(load_error(std::string(kTinyNet) + "train: !custom\n  epochs: 3\n") ==
        "t.yaml:4:8: unsupported tag !custom on a mapping (a mapping takes no tag, or !!map)");
  CHECK(load_error(std::string(kTinyNet) + "train: !!str {epochs: 3}\n") ==
        "t.yaml:4:8: unsupported tag !!str on a mapping (a mapping takes no tag, or !!map)");
  CHECK(load_config_text(std::string(kTinyNet) + "train: !!map {epochs: !!int 3}\n", "t.yaml").train.epochs == 3);
  // A tagged null is null, as a plain one is: an optional mapping set back to its default.
  const Config with = load_config_text(std::string(kTinyNet) + "train:\n  early_stopping: {patience: 2}\n", "t.yaml");
  CHECK(with.train.early_stopping.enabled);
  CHECK_FALSE(load_config_text(std::string(kTinyNet) + "train:\n  early_stopping: !!null null\n", "t.yaml")
                  .train.early_stopping.enabled);
  CHECK(load_error(std::string(kTinyNet) + "train:\n  epochs: !!null 3\n") ==
        "t.yaml:5:11: !!null takes no value but null or ~, got '3'");
}

TEST_CASE("hostile YAML fails fast with a message", "[config][errors]") {
  // "Billion laughs": each level repeats the previous one ten times.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) bomb += (j ? ", *a" : "*a") + std::to_string(i - 1);
    bomb += "]\n";
  }
  CHECK(load_error(bomb).find("too many YAML nodes (more than 100000)") != std::string::npos);
  std::string deep = "network: " + std::string(50000, '[') + std::string(50000, ']') + "\n";
  std::string msg = load_error(deep);
  CHECK(msg.rfind("t.yaml:1:", 0) == 0);
  CHECK(msg.find(": YAML syntax error: nested too deeply") != std::string::npos);
  // Anchors and aliases themselves are fine (each alias is a copy).
  Config c = load_config_text("network:\n  layers: [&f {type: flatten, name: a}, {type: flatten}]\n", "t.yaml");
  CHECK(c.network.layers.size() == 2);
  // An alias's copy keeps the positions of what it copies.
  CHECK(load_error("network:\n  layers: [&f {type: flatten, name: a}, *f]\n") ==
        "t.yaml:2:37: network.layers[1]: duplicate layer name 'a' (also network.layers[0])");
}

TEST_CASE("unknown keys at every level get did-you-mean or the allowed list", "[config][errors]") {
  const std::string net = kTinyNet;
  CHECK(load_error(net + "trian: {}\n") == "t.yaml:4:1: unknown top-level key 'trian' (did you mean 'train'?)");
  CHECK(load_error(net + "data:\n  datset: mnist\n") ==
        "t.yaml:5:3: data: unknown key 'datset' (did you mean 'dataset'?)");
  CHECK(load_error(net + "data:\n  colour: red\n") ==
        "t.yaml:5:3: data: unknown key 'colour' (allowed: dataset, train_limit, test_limit, shuffle)");
  CHECK(load_error("network:\n  layer: []\n") ==
        "t.yaml:2:3: network: unknown key 'layer' (did you mean 'layers'?)");
  CHECK(load_error(net + "init: {type: xavier, magntude: 2}\n") ==
        "t.yaml:4:22: init: unknown key 'magntude' (did you mean 'magnitude'?)");
  CHECK(load_error(net + "train:\n  epoch: 3\n") ==
        "t.yaml:5:3: train: unknown key 'epoch' (did you mean 'epochs'?)");
  CHECK(load_error(net + "train:\n  optimizer: sgd\n  learnign_rate: 0.1\n") ==
        "t.yaml:6:3: train: unknown key 'learnign_rate' (did you mean 'learning_rate'?)");
  CHECK(load_error(net + "train: {optimizer: sgd, momentun: 0.9}\n") ==
        "t.yaml:4:25: train: unknown key 'momentun' (did you mean 'momentum'?)");
  CHECK(load_error(net + "train:\n  lr_schedule: {type: step, Step_Epochs: 2}\n") ==
        "t.yaml:5:29: train.lr_schedule: unknown key 'Step_Epochs' (did you mean 'step_epochs'?)");
  // Keys one level off say where they belong.
  CHECK(load_error(net + "learning_rate: 0.05\n") ==
        "t.yaml:4:1: unknown top-level key 'learning_rate' (did you mean 'train.learning_rate'?)");
  CHECK(load_error(net + "optimizer: adam\n") ==
        "t.yaml:4:1: unknown top-level key 'optimizer' (did you mean 'train.optimizer'?)");
  CHECK(load_error(net + "epochs: 3\n") ==
        "t.yaml:4:1: unknown top-level key 'epochs' (did you mean 'train.epochs'?)");
  CHECK(load_error(net + "lr: 0.1\n") ==
        "t.yaml:4:1: unknown top-level key 'lr' (did you mean 'train.learning_rate'?)");
  CHECK(load_error(net + "train: {optimizer: sgd, lr: 0.1}\n") ==
        "t.yaml:4:25: train: unknown key 'lr' (did you mean 'learning_rate'?)");
  CHECK(load_error(net + "train:\n  min_lr: 0.001\n") ==
        "t.yaml:5:3: train: unknown key 'min_lr' (did you mean 'lr_schedule.min_lr'?)");
}

TEST_CASE("wrong types and out-of-range or unknown enum values", "[config][errors]") {
  const std::string net = kTinyNet;
  // (text after the tiny network, expected message); the offending value is on line 5.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train:\n  epochs: abc\n",
       "t.yaml:5:11: train.epochs: expected an integer from 1 to 100000, got 'abc'"},
      {"train:\n  epochs: [3]\n",
       "t.yaml:5:11: train.epochs: expected an integer from 1 to 100000, got a list"},
      {"train:\n  epochs: {n: 3}\n",
       "t.yaml:5:11: train.epochs: expected an integer from 1 to 100000, got a mapping"},
      {"train:\n  epochs:\n",
       "t.yaml:5:3: train.epochs: expected an integer from 1 to 100000, got nothing"},
      {"train:\n  epochs: \"10\"\n",
       "t.yaml:5:11: train.epochs: expected an integer from 1 to 100000, got the string \"10\""},
      {"train:\n  batch_size: 2.5\n",
       "t.yaml:5:15: train.batch_size: expected an integer from 1 to 65536, got '2.5'"},
      {"train:\n  batch_size: 0\n",
       "t.yaml:5:15: train.batch_size: expected an integer from 1 to 65536, got '0'"},
      {"train:\n  batch_size: 0x10\n",
       "t.yaml:5:15: train.batch_size: expected an integer from 1 to 65536, got '0x10'"},
      {"train:\n  seed: 99999999999999999999\n",
       "t.yaml:5:9: train.seed: expected an integer from 0 to 4611686018427387904, got "
       "'99999999999999999999' (too large)"},
      {"train:\n  seed: -1\n",
       "t.yaml:5:9: train.seed: expected an integer from 0 to 4611686018427387904, got '-1'"},
      {"train:\n  deterministic: yes\n",
       "t.yaml:5:18: train.deterministic: expected true or false, got 'yes'"},
      {"train:\n  learning_rate: 0\n",
       "t.yaml:5:18: train.learning_rate: expected a number > 0 and <= 10, got '0'"},
      {"train:\n  learning_rate: fast\n",
       "t.yaml:5:18: train.learning_rate: expected a number > 0 and <= 10, got 'fast'"},
      {"train:\n  learning_rate: .nan\n",
       "t.yaml:5:18: train.learning_rate: expected a number > 0 and <= 10, got '.nan'"},
      {"train:\n  momentum: 1\n",
       "t.yaml:5:13: train.momentum: expected a number >= 0 and < 1, got '1'"},
      {"train:\n  weight_decay: -0.1\n",
       "t.yaml:5:17: train.weight_decay: expected a number from 0 to 1, got '-0.1'"},
      {"train:\n  beta2: 1\n",
       "t.yaml:5:10: train.beta2: expected a number >= 0 and < 1, got '1'"},
      {"train:\n  epsilon: 0\n",
       "t.yaml:5:12: train.epsilon: expected a number > 0 and <= 1, got '0'"},
      {"train:\n  optimizer: adma\n",
       "t.yaml:5:14: train.optimizer: expected one of sgd, adam; got 'adma' (did you mean 'adam'?)"},
      {"train:\n  optimizer:\n",
       "t.yaml:5:3: train.optimizer: expected one of sgd, adam; got nothing"},
      {"train:\n  lr_schedule: {type: exponential}\n",
       "t.yaml:5:23: train.lr_schedule.type: expected one of fixed, step, cosine; got 'exponential'"},
      {"train:\n  lr_schedule: {factor: 1.5}\n",
       "t.yaml:5:25: train.lr_schedule.factor: expected a number > 0 and <= 1, got '1.5'"},
      {"train:\n  lr_schedule: {type: cosine, min_lr: 0.5}\n",
       "t.yaml:5:39: train.lr_schedule.min_lr: must not exceed train.learning_rate (0.1), got 0.5"},
      // Checked against the file's learning_rate, wherever it is written.
      {"train:\n  lr_schedule: {type: cosine, min_lr: 0.05}\n  learning_rate: 0.01\n",
       "t.yaml:5:39: train.lr_schedule.min_lr: must not exceed train.learning_rate (0.01), got 0.05"},
      // The optimizer is a name now; its settings sit in train itself.
      {"train:\n  optimizer: {type: sgd}\n",
       "t.yaml:5:14: train.optimizer: expected one of sgd, adam; got a mapping"},
      {"train:\n  lr_schedule: adam\n",
       "t.yaml:5:16: train.lr_schedule: expected a mapping of settings, got 'adam'"},
      {"data:\n  dataset: emnist\n",
       "t.yaml:5:12: data.dataset: expected one of mnist, fashion-mnist; got 'emnist' (did you mean "
       "'mnist'?)"},
      {"data:\n  train_limit: -5\n",
       "t.yaml:5:16: data.train_limit: expected an integer from 0 to 1099511627776, got '-5'"},
      {"init:\n  scale: 0\n",
       "t.yaml:5:10: init.scale: expected a number > 0 and <= 10, got '0'"},
      {"init:\n  factor_type: mean\n",
       "t.yaml:5:16: init.factor_type: expected one of avg, in, out; got 'mean'"},
      {"name: my run\n", "t.yaml:4:7: name: expected 1 to 64 letters, digits, '.', '_' or '-' (it "
                         "names the run folder), got 'my run'"},
  };
  for (const auto& [text, expected] : cases) {
    INFO(text);
    CHECK(load_error(net + text) == expected);
  }
}

TEST_CASE("network section errors", "[config][errors]") {
  CHECK(load_error("train: {epochs: 1}\n") ==
        "t.yaml:1:1: missing required section 'network' (its 'layers' list describes the model)");
  CHECK(load_error("network:\n  input: [1, 28, 28]\n") == "t.yaml:2:3: network: missing required field 'layers'");
  CHECK(load_error("network:\n") == "t.yaml:1:1: network: missing required field 'layers'");
  CHECK(load_error("network:\n  layers: []\n") ==
        "t.yaml:2:11: network.layers: expected at least one layer, got an empty list");
  CHECK(load_error("network:\n  layers: flatten\n") ==
        "t.yaml:2:11: network.layers: expected a list of layers, got 'flatten'");
  CHECK(load_error("network:\n  layers:\n    - flatten\n") ==
        "t.yaml:3:7: network.layers[0]: expected a mapping with a 'type', like {type: flatten}, got "
        "'flatten'");
  CHECK(load_error("network:\n  layers:\n    - {type: flatten}\n    - {name: fc}\n") ==
        "t.yaml:4:7: network.layers[1]: missing required field 'type'");
  CHECK(load_error("network:\n  layers:\n    - {type: [flatten]}\n") ==
        "t.yaml:3:14: network.layers[0].type: expected a string, got a list");
  CHECK(load_error("network:\n  layers:\n    - {type: flatten, name: a.b}\n") ==
        "t.yaml:3:29: network.layers[0].name: expected 1 to 64 letters, digits, '_' or '-', got 'a.b'");
  CHECK(load_error("network:\n  layers:\n    - {type: flatten, name: f}\n    - {type: flatten, name: f}\n") ==
        "t.yaml:4:29: network.layers[1]: duplicate layer name 'f' (also network.layers[0])");
  // A generated name ("<type><index>") can clash with a given one, too.
  CHECK(load_error("network:\n  layers:\n    - {type: flatten, name: flatten1}\n    - {type: flatten}\n") ==
        "t.yaml:4:7: network.layers[1]: duplicate layer name 'flatten1' (also network.layers[0])");
  CHECK(load_error("network:\n  input: [1, 28, 28, 1]\n  layers: [{type: flatten}]\n") ==
        "t.yaml:2:10: network.input: expected a list of 1 to 3 sizes per sample, like [1, 28, 28], got a "
        "list of 4");
  CHECK(load_error("network:\n  input: [1, 0, 28]\n  layers: [{type: flatten}]\n") ==
        "t.yaml:2:14: network.input[1]: expected an integer from 1 to 4096, got '0'");
  CHECK(load_error("network:\n  input: 784\n  layers: [{type: flatten}]\n") ==
        "t.yaml:2:10: network.input: expected a list of 1 to 3 sizes per sample, like [1, 28, 28], got "
        "'784'");
}

TEST_CASE("layer fields are left to the layer but keep their positions", "[config]") {
  Config c = load_config_text("network:\n  layers:\n    - type: fully_connected\n      name: fc1\n"
                              "      num_hidden: abc\n",
                              "t.yaml");
  const SpecNode& fc = c.network.layers[0].node;
  CHECK(fc.location() == "t.yaml:3:7");
  CHECK(fc.location("num_hidden") == "t.yaml:5:19");
  try {
    fc.require_int("num_hidden", 1, 1 << 20);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) ==
          "t.yaml:5:19: layer 'fc1' (fully_connected): num_hidden: expected an integer from 1 to "
          "1048576, got 'abc'");
  }
}

TEST_CASE("config files that cannot be read", "[config][errors]") {
  std::string dir = test::scratch_dir("config_files");
  std::string missing = dir + "/nope.yaml";
  try {
    load_config_file(missing);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).rfind(missing + ": ", 0) == 0);
  }
  try {
    load_config_file(dir);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()) == dir + ": is a folder, expected a YAML config file");
  }
  // A file's errors carry its path; the name defaults to its stem.
  std::string path = dir + "/tiny.yaml";
  { std::ofstream(path) << kTinyNet << "train: {epochs: 0}\n"; }
  try {
    load_config_file(path);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == path + ":4:17: train.epochs: expected an integer from 1 to 100000, got '0'");
  }
  { std::ofstream(path) << kTinyNet; }
  CHECK(load_config_file(path).name == "tiny");
}

TEST_CASE("train.cuda_graphs: off by default, a bool, refused with its name otherwise", "[config]") {
  const std::string net = kTinyNet;
  CHECK(load_config_text(net, "t.yaml").train.cuda_graphs == false);
  CHECK(load_config_text(net + "train: {cuda_graphs: true}\n", "t.yaml").train.cuda_graphs == true);
  CHECK(load_config_text(net + "train: {cuda_graphs: false}\n", "t.yaml").train.cuda_graphs == false);
  CHECK(load_config_text(net, "t.yaml", {"train.cuda_graphs=true"}).train.cuda_graphs == true);
  // A bad value: one line naming the file, the position and the key (load_error checks exit 2, one line).
  std::string msg = load_error(net + "train: {cuda_graphs: sometimes}\n");
  CHECK(msg == "t.yaml:4:22: train.cuda_graphs: expected true or false, got 'sometimes'");
  msg = load_error(net, {"train.cuda_graphs=2"});
  CHECK(msg.find("train.cuda_graphs: expected true or false, got '2'") != std::string::npos);
  // A misspelling is caught as any unknown key.
  CHECK(load_error(net + "train: {cuda_graph: true}\n").find("did you mean 'cuda_graphs'") != std::string::npos);
}
