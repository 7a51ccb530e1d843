// Helpers for the config tests: load inline YAML and capture the one-line error.
#pragma once

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "config/config.h"
#include "core/error.h"
#include "usage_error.h"

namespace mnistctl::test {

// A minimal valid network, to put before or after the part a test is about.
inline const char* kTinyNet = "network:\n  layers:\n    - {type: flatten}\n";

// The message of the UsageError that loading `text` as "t.yaml" throws; fails the test
// when nothing (or something else) is thrown.
inline std::string load_error(const std::string& text, const std::vector<std::string>& sets = {}) {
  const std::string msg = usage_error_from([&] { load_config_text(text, "t.yaml", sets); }, "loading:\n" + text);
  CHECK(msg.find('\n') == std::string::npos);  // one line
  return msg;
}

}  // namespace mnistctl::test
