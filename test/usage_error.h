// The one way the unit tests catch a refusal: the message of the UsageError a call throws.
#pragma once

#include <string>

#include <catch2/catch.hpp>

#include "core/error.h"

namespace mnistctl::test {

// The message of the UsageError (exit code 2) that calling `f` throws; fails the test where
// it throws none (`what` says what was called). Anything else it throws fails the test too.
template <typename F>
std::string usage_error_from(F&& f, const std::string& what = "") {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    return e.what();
  }
  FAIL("expected a UsageError" << (what.empty() ? "" : " from " + what));
  return "";
}

}  // namespace mnistctl::test
