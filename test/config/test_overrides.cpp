// --set overrides and resolved_yaml.
#include <catch2/catch.hpp>

#include "config/config.h"
#include "config_test_util.h"
#include "core/error.h"

using namespace mnistctl;
using mnistctl::test::kTinyNet;
using mnistctl::test::load_error;

namespace {

const char* kConv = R"(name: small
network:
  layers:
    - {type: convolution, name: conv1, kernel: [5, 5], num_filter: 20}
    - {type: flatten}
    - {type: fully_connected, name: fc1, num_hidden: 10}
train:
  epochs: 10
  optimizer: sgd
)";

Config load(const std::vector<std::string>& sets) { return load_config_text(kConv, "c.yaml", sets); }

// Everything a Config holds, layer fields included (through their resolved text).
void check_same(const Config& a, const Config& b) {
  CHECK(a.name == b.name);
  CHECK(a.data.dataset == b.data.dataset);
  CHECK(a.data.train_limit == b.data.train_limit);
  CHECK(a.data.test_limit == b.data.test_limit);
  CHECK(a.data.shuffle == b.data.shuffle);
  CHECK(a.network.input == b.network.input);
  REQUIRE(a.network.layers.size() == b.network.layers.size());
  for (size_t i = 0; i < a.network.layers.size(); ++i) {
    CHECK(a.network.layers[i].type == b.network.layers[i].type);
    CHECK(a.network.layers[i].name == b.network.layers[i].name);
  }
  CHECK(a.init.type == b.init.type);
  CHECK(a.init.scale == b.init.scale);
  CHECK(a.init.sigma == b.init.sigma);
  CHECK(a.init.rnd_type == b.init.rnd_type);
  CHECK(a.init.factor_type == b.init.factor_type);
  CHECK(a.init.magnitude == b.init.magnitude);
  CHECK(a.train.batch_size == b.train.batch_size);
  CHECK(a.train.epochs == b.train.epochs);
  CHECK(a.train.seed == b.train.seed);
  CHECK(a.train.log_interval == b.train.log_interval);
  CHECK(a.train.deterministic == b.train.deterministic);
  CHECK(a.train.allow_tf32 == b.train.allow_tf32);
  CHECK(a.train.optimizer.type == b.train.optimizer.type);
  CHECK(a.train.optimizer.learning_rate == b.train.optimizer.learning_rate);
  CHECK(a.train.optimizer.momentum == b.train.optimizer.momentum);
  CHECK(a.train.optimizer.weight_decay == b.train.optimizer.weight_decay);
  CHECK(a.train.optimizer.beta1 == b.train.optimizer.beta1);
  CHECK(a.train.optimizer.beta2 == b.train.optimizer.beta2);
  CHECK(a.train.optimizer.epsilon == b.train.optimizer.epsilon);
  CHECK(a.train.lr_schedule.type == b.train.lr_schedule.type);
  CHECK(a.train.lr_schedule.factor == b.train.lr_schedule.factor);
  CHECK(a.train.lr_schedule.step_epochs == b.train.lr_schedule.step_epochs);
  CHECK(a.train.lr_schedule.min_lr == b.train.lr_schedule.min_lr);
  CHECK(a.resolved_yaml == b.resolved_yaml);
}

}  // namespace

TEST_CASE("set overrides replace scalars and nested fields and list items", "[config][set]") {
  Config base = load({});
  CHECK(base.train.epochs == 10);
  CHECK(load({"train.epochs=3"}).train.epochs == 3);
  CHECK(load({"train.optimizer=adam"}).train.optimizer.type == "adam");
  // Later overrides win.
  CHECK(load({"train.epochs=3", "train.epochs=4"}).train.epochs == 4);
  // A list index walks the layers; a flow list is one value.
  Config c = load({"network.layers.0.kernel=[3,3]", "network.layers.2.num_hidden=32"});
  CHECK(c.network.layers[0].node.require_pair("kernel", 1, 64) == std::array<int64_t, 2>{3, 3});
  CHECK(c.network.layers[2].node.require_int("num_hidden", 1, 1024) == 32);
  // A whole layer can be replaced by a flow mapping.
  Config r = load({"network.layers.1={type: dropout, p: 0.25}"});
  CHECK(r.network.layers[1].type == "dropout");
  CHECK(r.network.layers[1].name == "dropout1");
  CHECK(r.network.layers[1].node.get_double("p", 0.5, 0, 0.99) == 0.25);
}

TEST_CASE("set overrides create missing mapping keys", "[config][set]") {
  Config c = load({"train.learning_rate=0.05", "train.momentum=0.9", "train.lr_schedule.type=step",
                   "data.shuffle=false", "network.layers.0.stride=2"});
  CHECK(c.train.optimizer.type == "sgd");
  CHECK(c.train.optimizer.learning_rate == 0.05);
  CHECK(c.train.optimizer.momentum == 0.9);
  CHECK(c.train.lr_schedule.type == "step");
  CHECK(c.data.shuffle == false);
  CHECK(c.network.layers[0].node.get_pair("stride", {1, 1}, 1, 8) == std::array<int64_t, 2>{2, 2});
  // A section written with nothing under it is filled in too.
  Config e = load_config_text(std::string(kTinyNet) + "init:\n", "t.yaml", {"init.type=xavier"});
  CHECK(e.init.type == "xavier");
}

TEST_CASE("set override value errors name the override", "[config][set][errors]") {
  // Values are validated like the file's, but located at the override.
  CHECK(load_error(kConv, {"train.epochs=abc"}) ==
        "--set train.epochs=abc: train.epochs: expected an integer from 1 to 100000, got 'abc'");
  CHECK(load_error(kConv, {"train.learning_rate=[1,2]"}) ==
        "--set train.learning_rate=[1,2]: train.learning_rate: expected a number > 0 and <= 10, got a list");
  CHECK(load_error(kConv, {"train.optimizer=adma"}) ==
        "--set train.optimizer=adma: train.optimizer: expected one of sgd, adam; got 'adma' (did you mean "
        "'adam'?)");
  CHECK(load_error(kConv, {"train.epochs="}) ==
        "--set train.epochs=: train.epochs: expected an integer from 1 to 100000, got nothing");
  // Unknown keys that an override creates fail the same unknown-key check.
  CHECK(load_error(kConv, {"trian.epochs=5"}) ==
        "--set trian.epochs=5: unknown top-level key 'trian' (did you mean 'train'?)");
  CHECK(load_error(kConv, {"train.learning_rat=0.5"}) ==
        "--set train.learning_rat=0.5: train: unknown key 'learning_rat' (did you mean 'learning_rate'?)");
  CHECK(load_error(kConv, {"learning_rate=0.05"}) ==
        "--set learning_rate=0.05: unknown top-level key 'learning_rate' (did you mean "
        "'train.learning_rate'?)");
  CHECK(load_error(kConv, {"train.lr=0.05"}) ==
        "--set train.lr=0.05: train: unknown key 'lr' (did you mean 'learning_rate'?)");
  // The old nested paths: through the optimizer's name, or creating a mapping in its place.
  CHECK(load_error(kConv, {"train.optimizer.learning_rate=0.05"}) ==
        "--set train.optimizer.learning_rate=0.05: 'train.optimizer' is 'sgd', not a mapping or a list");
  CHECK(load_error(kTinyNet, {"train.optimizer.learning_rate=0.05"}) ==
        "--set train.optimizer.learning_rate=0.05: train.optimizer: expected one of sgd, adam; got a "
        "mapping");
  // Layer fields from an override, read by the layer.
  Config c = load({"network.layers.0.kernel=[3,0]"});
  try {
    c.network.layers[0].node.require_pair("kernel", 1, 64);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) ==
          "--set network.layers.0.kernel=[3,0]: layer 'conv1' (convolution): kernel[1]: expected an "
          "integer from 1 to 64, got '0'");
  }
  // The rest of the file keeps its positions.
  CHECK(load_error(kConv, {"train.epochs=2", "network.layers.0.num_filter=20", "name=a b"}) ==
        "--set name=a b: name: expected 1 to 64 letters, digits, '.', '_' or '-' (it names the run "
        "folder), got 'a b'");
  CHECK(load_error(std::string(kConv) + "  epochs: 0\n", {"train.seed=1"}) ==
        "t.yaml:10:3: duplicate key 'epochs' (first at line 8)");
}

TEST_CASE("malformed set overrides are usage errors", "[config][set][errors]") {
  CHECK(load_error(kConv, {"train.epochs"}) == "--set train.epochs: expected key.path=value");
  CHECK(load_error(kConv, {"=3"}) == "--set =3: empty key path before '='");
  CHECK(load_error(kConv, {"train..epochs=3"}) ==
        "--set train..epochs=3: empty segment in the key path 'train..epochs'");
  CHECK(load_error(kConv, {"network.layers.3.num_hidden=5"}) ==
        "--set network.layers.3.num_hidden=5: index 3 is out of range: 'network.layers' has 3 item(s)");
  CHECK(load_error(kConv, {"network.layers.first.num_hidden=5"}) ==
        "--set network.layers.first.num_hidden=5: 'network.layers' is a list: expected an index, got "
        "'first'");
  CHECK(load_error(kConv, {"train.epochs.max=5"}) ==
        "--set train.epochs.max=5: 'train.epochs' is '10', not a mapping or a list");
  CHECK(load_error(kConv, {"train.epochs=[1, 2"}) ==
        "--set train.epochs=[1, 2: invalid YAML value: end of sequence flow not found");
}

TEST_CASE("resolved_yaml is the effective config and reads back to the same Config", "[config][set]") {
  Config c = load({"train.momentum=0.9", "train.optimizer=adam", "network.layers.0.kernel=[3,3]",
                   "name=renamed"});
  INFO(c.resolved_yaml);
  Config back = load_config_text(c.resolved_yaml, "runs/renamed/config.yaml");
  check_same(c, back);
  CHECK(back.train.optimizer.momentum == 0.9);
  CHECK(back.train.optimizer.type == "adam");
  CHECK(back.network.layers[0].node.require_pair("kernel", 1, 64) == std::array<int64_t, 2>{3, 3});
  CHECK(back.network.layers[0].node.require_int("num_filter", 1, 64) == 20);

  // A config without `name` gets its file's stem written in, so a checkpoint's copy keeps it.
  Config tiny = load_config_text(kTinyNet, "nets/tiny.yaml");
  CHECK(tiny.resolved_yaml.rfind("name: tiny\n", 0) == 0);
  check_same(tiny, load_config_text(tiny.resolved_yaml, "elsewhere.yaml"));

  // Both shipped configs, and strings that only read as strings when quoted.
  Config lenet = load_config_text(builtin_lenet_yaml(), "<built-in lenet.yaml>");
  check_same(lenet, load_config_text(lenet.resolved_yaml, "x.yaml"));
  Config q = load_config_text("name: \"123\"\nnetwork: {layers: [{type: flatten, name: \"true\"}]}\n", "q.yaml");
  Config qb = load_config_text(q.resolved_yaml, "x.yaml");
  check_same(q, qb);
  CHECK(qb.network.layers[0].node.get_string("name", "") == "true");
}
