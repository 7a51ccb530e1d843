// train.precision through the binary: a CPU without BF16 is refused at start-up with one line
// naming the missing instruction set (DNNL_MAX_CPU_ISA plays that CPU: oneDNN's own cap on
// the ISA it uses), so are contexts without BF16 and unknown precisions; on a CPU with BF16
// a short bf16 run learns and writes an FP32 checkpoint that eval reads at fp32.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "backend/backend.h"
#include "cli/process.h"
#include "test_util.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

TEST_CASE("bf16 on a CPU without AVX-512 BF16 is refused at start-up with one line") {
  RunResult r = run_mnistctl({"train", "--config", config_file("lenet.yaml"), "--precision", "bf16", "--dry-run"},
                             {}, {"DNNL_MAX_CPU_ISA=AVX512_CORE"});
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK(r.err.find("AVX-512 BF16") != std::string::npos);
  CHECK(r.err.find("train.precision") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  // The same refusal without --dry-run comes before any data is read: no data folder needed.
  RunResult r2 =
      run_mnistctl({"train", "--config", config_file("lenet.yaml"), "--set", "train.precision=bf16", "--data-dir",
                    scratch_dir("bf16-no-data"), "--out", scratch_dir("bf16-no-data-run") + "/run"},
                   {}, {"DNNL_MAX_CPU_ISA=AVX512_CORE"});
  CHECK(r2.code == 2);
  CHECK(r2.err.find("AVX-512 BF16") != std::string::npos);
  RunResult r3 = run_mnistctl({"bench", "--precision", "bf16"}, {}, {"DNNL_MAX_CPU_ISA=AVX512_CORE"});
  CHECK(r3.code == 2);
  CHECK(r3.err.find("AVX-512 BF16") != std::string::npos);
}

TEST_CASE("bf16 is refused on the reference backend, and unknown precisions by the config") {
  RunResult r =
      run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--ctx", "ref", "--precision", "bf16", "--dry-run"});
  CHECK(r.code == 2);
  CHECK(r.err.find("FP32 only") != std::string::npos);
  RunResult bad =
      run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--set", "train.precision=fp16", "--dry-run"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("precision") != std::string::npos);
  CHECK(bad.err.find("bf16") != std::string::npos);  // the message lists the allowed values
}

TEST_CASE("a bf16 run learns and its checkpoint is FP32, read by eval at fp32") {
  try {
    check_precision("cpu", Precision::bf16, "test");
  } catch (const std::exception& e) {
    skip_test(std::string("no BF16 on this CPU: ") + e.what());
  }
  skip_without_mnist();
  const std::string root = data_root("bf16-run");
  const std::string out = root + "/run";
  RunResult t = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out", out,
                              "--epochs", "1", "--threads", "2", "--precision", "bf16", "--set",
                              "data.train_limit=6000", "--set", "init.type=xavier", "--set", "data.test_limit=2000"});
  INFO(t.out << t.err);
  REQUIRE(t.code == 0);
  CHECK(t.out.find("bf16") != std::string::npos);  // the backend line says the precision
  std::smatch m;
  REQUIRE(std::regex_search(t.out, m, std::regex("Validation-accuracy=([0-9.]+)")));
  const double val = std::stod(m[1]);
  CHECK(val > 0.80);
  RunResult e = run_mnistctl({"eval", "--model", out, "--data-dir", root, "--json"});
  INFO(e.err);
  REQUIRE(e.code == 0);
  REQUIRE(std::regex_search(e.out, m, std::regex("\"accuracy\":([0-9.]+)")));
  // eval runs the full test set at FP32: close to the bf16 run's figure on its first 2,000.
  CHECK(std::stod(m[1]) > 0.80);
  REQUIRE(std::regex_search(e.out, m, std::regex("\"backend\":\"([^\"]*)\"")));
  CHECK(std::string(m[1]).find("bf16") == std::string::npos);  // eval and predict run FP32
}
