// A build without ONNX export (-DMNISTCTL_ENABLE_ONNX=OFF): `mnistctl export` answers with one
// line and exit 2, whatever else is on the command line.
#include <algorithm>

#include <catch2/catch.hpp>

#include "cli/process.h"

using namespace mnistctl::test;

TEST_CASE("without ONNX support, export refuses with one line and exit 2", "[cli]") {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"export"}, {"export", "--model", "runs/x", "--output", "x.onnx"}}) {
    RunResult r = run_mnistctl(args);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.rfind("mnistctl: export: this mnistctl was built without ONNX export", 0) == 0);
  }
}
