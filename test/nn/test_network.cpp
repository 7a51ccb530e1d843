// The registry and the network builder: shape inference and parameter counts of the
// shipped configs (checked against the layer formulas), the errors a user gets for an
// unknown type or a shape that doesn't fit, and the memory check.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "nn/network.h"
#include "nn/registry.h"
#include "test_util.h"
#include "usage_error.h"

using namespace mnistctl;

namespace {
std::string error_of(const std::string& yaml) {
  return test::usage_error_from(
      [&] {
        Config c = load_config_text(yaml, "net.yaml");
        Network n(c.network);
      },
      "building:\n" + yaml);
}
int64_t conv_params(int64_t k, int64_t c, int64_t kh, int64_t kw) { return k * c * kh * kw + k; }
int64_t fc_params(int64_t out, int64_t in) { return out * in + out; }
}  // namespace

TEST_CASE("the shipped LeNet infers the tutorial's shapes and parameter count") {
  Config c = load_config_file(test::config_file("lenet.yaml"));
  Network net(c.network);
  const auto& L = net.layers();
  REQUIRE(L.size() == 11);
  CHECK(L[0]->out_shape() == Shape{20, 24, 24});
  CHECK(L[2]->out_shape() == Shape{20, 12, 12});
  CHECK(L[3]->out_shape() == Shape{50, 8, 8});
  CHECK(L[5]->out_shape() == Shape{50, 4, 4});
  CHECK(L[6]->out_shape() == Shape{800});
  CHECK(net.output_shape() == Shape{10});
  CHECK(net.param_count() ==
        conv_params(20, 1, 5, 5) + conv_params(50, 20, 5, 5) + fc_params(500, 800) + fc_params(10, 500));
  CHECK(net.has_loss());
  std::string s = net.summary(100);
  CHECK(s.find("conv2") != std::string::npos);
  CHECK(s.find("50x4x4") != std::string::npos);
  CHECK(s.find("total parameters: " + std::to_string(net.param_count())) != std::string::npos);
}

TEST_CASE("the shipped MLP infers 784-128-64-10") {
  Config c = load_config_file(test::config_file("mlp.yaml"));
  Network net(c.network);
  CHECK(net.param_count() == fc_params(128, 784) + fc_params(64, 128) + fc_params(10, 64));
  CHECK(net.output_shape() == Shape{10});
}

TEST_CASE("an unknown layer type lists the known ones at the type field") {
  std::string e = error_of("network:\n  layers:\n    - {type: convolutoin, kernel: 5, num_filter: 2}\n");
  CHECK(e.find("net.yaml:3:") == 0);
  CHECK(e.find("unknown layer type 'convolutoin'") != std::string::npos);
  for (const auto& t : LayerRegistry::types()) CHECK(e.find(t) != std::string::npos);
}

TEST_CASE("a kernel larger than its input is refused with the layer's location") {
  std::string e = error_of(
      "network:\n  input: [1, 3, 3]\n  layers:\n    - {type: convolution, name: c1, kernel: [5, 5], num_filter: 2}\n");
  CHECK(e.find("net.yaml:4:") == 0);
  CHECK(e.find("5x5 kernel does not fit the 3x3 input") != std::string::npos);
}

TEST_CASE("layer fields are validated: unknown keys and missing or out-of-range values") {
  CHECK(error_of("network: {layers: [{type: fully_connected, num_hiden: 3}]}").find("num_hiden") !=
        std::string::npos);
  CHECK(error_of("network: {layers: [{type: fully_connected}]}").find("num_hidden") != std::string::npos);
  CHECK(error_of("network: {layers: [{type: activation, act_type: swish}]}").find("swish") != std::string::npos);
  CHECK(error_of("network: {layers: [{type: dropout, p: 1.5}]}").find("p: expected a number from 0 to 0.999, got '1.5'") !=
        std::string::npos);
  CHECK(error_of("network: {layers: [{type: softmax_output}, {type: flatten}]}").find("must be the last layer") !=
        std::string::npos);
  CHECK(error_of("network: {input: [1, 28, 28], layers: [{type: softmax_output}]}").find("flat input") !=
        std::string::npos);
}

TEST_CASE("a network that cannot fit in memory is refused before allocating") {
  Config c = load_config_text(
      "network: {input: [1, 4096, 4096], layers: [{type: convolution, kernel: 1, num_filter: 65536}]}", "big.yaml");
  Network net(c.network);  // shape inference allocates nothing
  CHECK(net.memory_bytes(100) > 1e14);
  try {
    net.check_fits(100, 24e9, "big.yaml");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("GiB") != std::string::npos);
  }
  // Inference holds no gradients or optimizer state: less, and refused against its own budget.
  const double infer = net.memory_bytes(100, Network::Use::inference);
  CHECK(infer > 1e14);
  CHECK(infer < net.memory_bytes(100));
  try {
    net.check_fits(100, 6e9, "big.yaml", Network::Use::inference);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("inference budget") != std::string::npos);
  }
}
