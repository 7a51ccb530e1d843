// SpecNode: the typed getters layers read their fields with, and check_keys.
#include <catch2/catch.hpp>

#include "config/config.h"
#include "config/spec_node.h"
#include "core/error.h"
#include "usage_error.h"

using namespace mnistctl;
using mnistctl::test::usage_error_from;

namespace {

// Line numbers below refer to this text (the layer mapping starts at 3:7).
const char* kLayer = R"(network:
  layers:
    - type: custom
      name: l1
      i: 7
      neg: -3
      d: 0.5
      b: true
      s: hello
      e: tanh
      p1: 3
      p2: [4, 5]
      p3: [1, 2, 3]
      q: "7"
      nul:
)";

SpecNode layer() {
  static const Config c = load_config_text(kLayer, "t.yaml");
  return c.network.layers.at(0).node;
}

}  // namespace

TEST_CASE("SpecNode has and location and fail", "[config][spec]") {
  SpecNode n = layer();
  CHECK(n.has("i"));
  CHECK(n.has("nul"));
  CHECK(!n.has("missing"));
  CHECK(n.location() == "t.yaml:3:7");
  CHECK(n.location("d") == "t.yaml:7:10");
  CHECK(n.location("missing") == "t.yaml:3:7");
  CHECK(usage_error_from([&] { n.fail("e", "not with this input"); }) ==
        "t.yaml:10:10: layer 'l1' (custom): e: not with this input");
  CHECK(usage_error_from([&] { n.fail("", "must be the last layer"); }) ==
        "t.yaml:3:7: layer 'l1' (custom): must be the last layer");
}

TEST_CASE("SpecNode integers", "[config][spec]") {
  SpecNode n = layer();
  CHECK(n.get_int("i", 0, 0, 10) == 7);
  CHECK(n.get_int("neg", 0, -5, 5) == -3);
  CHECK(n.get_int("missing", 42, 0, 10) == 42);
  CHECK(n.require_int("i", 7, 7) == 7);
  CHECK(usage_error_from([&] { n.get_int("i", 0, 0, 5); }) ==
        "t.yaml:5:10: layer 'l1' (custom): i: expected an integer from 0 to 5, got '7'");
  CHECK(usage_error_from([&] { n.get_int("neg", 0, 0, std::numeric_limits<int64_t>::max()); }) ==
        "t.yaml:6:12: layer 'l1' (custom): neg: expected an integer >= 0, got '-3'");
  CHECK(usage_error_from([&] { n.get_int("d", 0, 0, 5); }) ==
        "t.yaml:7:10: layer 'l1' (custom): d: expected an integer from 0 to 5, got '0.5'");
  CHECK(usage_error_from([&] { n.get_int("q", 0, 0, 10); }) ==
        "t.yaml:14:10: layer 'l1' (custom): q: expected an integer from 0 to 10, got the string \"7\"");
  CHECK(usage_error_from([&] { n.get_int("nul", 0, 0, 10); }) ==
        "t.yaml:15:7: layer 'l1' (custom): nul: expected an integer from 0 to 10, got nothing");
  CHECK(usage_error_from([&] { n.require_int("num_hidden", 1, 10); }) ==
        "t.yaml:3:7: layer 'l1' (custom): missing required field 'num_hidden'");
}

TEST_CASE("SpecNode doubles and booleans and strings and enums", "[config][spec]") {
  SpecNode n = layer();
  CHECK(n.get_double("d", 0, 0, 1) == 0.5);
  CHECK(n.get_double("i", 0, 0, 10) == 7.0);  // an integer is a number
  CHECK(n.get_double("missing", 0.25, 0, 1) == 0.25);
  CHECK(usage_error_from([&] { n.get_double("d", 0, 0, 0.25); }) ==
        "t.yaml:7:10: layer 'l1' (custom): d: expected a number from 0 to 0.25, got '0.5'");
  CHECK(usage_error_from([&] { n.get_double("s", 0, 0, 1); }) ==
        "t.yaml:9:10: layer 'l1' (custom): s: expected a number from 0 to 1, got 'hello'");

  CHECK(n.get_bool("b", false) == true);
  CHECK(n.get_bool("missing", true) == true);
  CHECK(usage_error_from([&] { n.get_bool("i", false); }) ==
        "t.yaml:5:10: layer 'l1' (custom): i: expected true or false, got '7'");

  CHECK(n.get_string("s", "") == "hello");
  CHECK(n.get_string("q", "") == "7");
  CHECK(n.get_string("missing", "dflt") == "dflt");
  CHECK(usage_error_from([&] { n.get_string("p2", ""); }) ==
        "t.yaml:12:11: layer 'l1' (custom): p2: expected a string, got a list");

  CHECK(n.get_enum("e", "relu", {"relu", "tanh"}) == "tanh");
  CHECK(n.get_enum("missing", "relu", {"relu", "tanh"}) == "relu");
  CHECK(usage_error_from([&] { n.get_enum("e", "relu", {"relu", "sigmoid", "softrelu"}); }) ==
        "t.yaml:10:10: layer 'l1' (custom): e: expected one of relu, sigmoid, softrelu; got 'tanh'");
  CHECK(usage_error_from([&] { n.get_enum("s", "", {"hallo", "bye"}); }) ==
        "t.yaml:9:10: layer 'l1' (custom): s: expected one of hallo, bye; got 'hello' (did you mean 'hallo'?)");
}

TEST_CASE("SpecNode pairs", "[config][spec]") {
  SpecNode n = layer();
  CHECK(n.get_pair("p1", {0, 0}, 1, 10) == std::array<int64_t, 2>{3, 3});
  CHECK(n.get_pair("p2", {0, 0}, 1, 10) == std::array<int64_t, 2>{4, 5});
  CHECK(n.get_pair("missing", {1, 2}, 1, 10) == std::array<int64_t, 2>{1, 2});
  CHECK(n.require_pair("p2", 1, 10) == std::array<int64_t, 2>{4, 5});
  CHECK(usage_error_from([&] { n.get_pair("p3", {0, 0}, 1, 10); }) ==
        "t.yaml:13:11: layer 'l1' (custom): p3: expected an integer from 1 to 10 or a list of two, got a "
        "list of 3");
  CHECK(usage_error_from([&] { n.get_pair("p2", {0, 0}, 1, 4); }) ==
        "t.yaml:12:15: layer 'l1' (custom): p2[1]: expected an integer from 1 to 4, got '5'");
  CHECK(usage_error_from([&] { n.get_pair("s", {0, 0}, 1, 4); }) ==
        "t.yaml:9:10: layer 'l1' (custom): s: expected an integer from 1 to 4, got 'hello'");
  CHECK(usage_error_from([&] { n.require_pair("kernel", 1, 4); }) ==
        "t.yaml:3:7: layer 'l1' (custom): missing required field 'kernel'");
}

TEST_CASE("SpecNode check_keys", "[config][spec]") {
  SpecNode n = layer();
  // type and name are every layer's own: a factory lists only its fields.
  CHECK_NOTHROW(n.check_keys({"i", "neg", "d", "b", "s", "e", "p1", "p2", "p3", "q", "nul"}));
  CHECK(usage_error_from([&] { n.check_keys({"i", "neg", "d", "b", "s", "e", "p1", "p2", "p3", "q", "null"}); }) ==
        "t.yaml:15:7: layer 'l1' (custom): unknown key 'nul' (did you mean 'null'?)");
  CHECK(usage_error_from([&] { n.check_keys({"i", "neg"}); }) ==
        "t.yaml:7:7: layer 'l1' (custom): unknown key 'd' (allowed: type, name, i, neg)");
  // Factories that list type and name themselves get the same list.
  CHECK(usage_error_from([&] { n.check_keys({"type", "name", "i", "neg"}); }) ==
        "t.yaml:7:7: layer 'l1' (custom): unknown key 'd' (allowed: type, name, i, neg)");

  Config c = load_config_text("network:\n  layers:\n    - {type: fully_connected, name: fc1, num_hiden: 10}\n",
                              "t.yaml");
  CHECK(usage_error_from([&] { c.network.layers[0].node.check_keys({"num_hidden", "no_bias", "flatten"}); }) ==
        "t.yaml:3:42: layer 'fc1' (fully_connected): unknown key 'num_hiden' (did you mean 'num_hidden'?)");
}

TEST_CASE("SpecNode default-constructed reads as empty", "[config][spec]") {
  SpecNode n;
  CHECK(!n.has("x"));
  CHECK(n.get_int("x", 3, 0, 10) == 3);
  CHECK_NOTHROW(n.check_keys({}));
  CHECK(usage_error_from([&] { n.require_int("x", 0, 1); }).find("missing required field 'x'") != std::string::npos);
}
