// `mnistctl bench` through the binary: a row per non-view layer in the config's order plus the
// gather and optimizer rows, finite positive timings with min <= median <= max, the FLOP counts
// of the weighted layers, the arithmetic peak where the backend has a probe, and a whole-step
// figure of the same order as the sum of the rows.
// No data needed: bench runs on random bytes shaped like the dataset.
#include <array>
#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "test_util.h"

using namespace mnistctl::test;

namespace {

std::vector<std::string> names_in_order(const std::string& json) {
  std::vector<std::string> names;
  std::regex re("\\{\"name\":\"([^\"]+)\"");
  for (auto it = std::sregex_iterator(json.begin(), json.end(), re); it != std::sregex_iterator(); ++it)
    names.push_back((*it)[1]);
  return names;
}

// Every {"median":a,"min":b,"max":c} object in the text.
std::vector<std::array<double, 3>> timings(const std::string& json) {
  std::vector<std::array<double, 3>> t;
  std::regex re("\\{\"median\":([^,]+),\"min\":([^,]+),\"max\":([^}]+)\\}");
  for (auto it = std::sregex_iterator(json.begin(), json.end(), re); it != std::sregex_iterator(); ++it)
    t.push_back({std::stod((*it)[1]), std::stod((*it)[2]), std::stod((*it)[3])});
  return t;
}

double number(const std::string& json, const std::string& key) {
  std::smatch m;
  REQUIRE(std::regex_search(json, m, std::regex("\"" + key + "\":([-0-9.eE+a-z]+)")));
  return std::stod(m[1]);  // "nan"/"inf" parse too, and then fail the finiteness checks
}

std::string row(const std::string& json, const std::string& name) {
  std::smatch m;
  REQUIRE(std::regex_search(json, m, std::regex("\\{\"name\":\"" + name + "\"[^\\]]*?\"backward_flops\":[0-9.]+\\}")));
  return m[0];
}

// Whether the CPU backend's peak probe can run here (fma_peak.h: AVX2 FMA at least).
bool has_avx2_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

}  // namespace

TEST_CASE("bench times every layer of the MLP on cpu and ref, and the parts add up to the whole") {
  for (const std::string ctx : {"cpu", "ref"}) {
    INFO("--ctx " << ctx);
    RunResult r = run_mnistctl({"bench", "--config", config_file("mlp.yaml"), "--ctx",
                                ctx, "--threads", "1", "--batch", "32", "--iters", "5", "--warmup", "1", "--json"});
    INFO(r.err);
    REQUIRE(r.code == 0);
    const std::string& j = r.out;
    CHECK(names_in_order(j) ==
          std::vector<std::string>{"data", "fc1", "relu1", "fc2", "relu2", "fc3", "softmax", "optimizer"});
    auto ts = timings(j);
    REQUIRE(ts.size() == 8 + 6 + 1);  // forward of 8 rows, backward of the 6 layers, the whole step
    for (const auto& t : ts) {
      CHECK(std::isfinite(t[0]));
      CHECK(t[0] > 0);
      CHECK(t[1] <= t[0]);
      CHECK(t[0] <= t[2]);
    }
    // fc1: 32 x 128 outputs, 784 multiply-adds each; backward has no input gradient (first layer).
    CHECK(number(row(j, "fc1"), "forward_flops") == 2.0 * 32 * 128 * 784);
    CHECK(number(row(j, "fc1"), "backward_flops") == 2.0 * 32 * 128 * 784);
    // fc2 also computes its input gradient.
    CHECK(number(row(j, "fc2"), "backward_flops") == 2.0 * 2.0 * 32 * 64 * 128);
    CHECK(number(row(j, "relu1"), "forward_flops") == 0);
    // No convolution: every tensor NCHW; the pseudo-rows have no layout.
    CHECK(row(j, "fc1").find("\"layout\":\"nchw\"") != std::string::npos);
    CHECK(j.find("{\"name\":\"data\",\"type\":\"gather\",\"output\":\"\",\"layout\":null,") != std::string::npos);
    double gemm = number(j, "gemm_gflops"), sum = number(j, "sum_of_medians_ms"), ips = number(j, "images_per_s");
    CHECK(std::isfinite(gemm));
    CHECK(gemm > 0);
    // The arithmetic peak: the CPU backend probes it (AVX2 or AVX-512 here), ref has no probe.
    if (ctx == "cpu" && has_avx2_fma()) {
      const double peak = number(j, "peak_gflops");
      CHECK(std::isfinite(peak));
      CHECK(peak > 0);
      CHECK(j.find("\"peak_probe\":\"AVX") != std::string::npos);
    } else if (ctx == "ref") {
      CHECK(j.find("\"peak_gflops\":null,\"peak_probe\":null,") != std::string::npos);
    }
    // Host memory on huge pages (core/huge_pages.h): the kernel's mode, and this process's
    // huge-page bytes in whole 2 MiB pages (how many depends on the pages the kernel has free).
    if (std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled"))
      CHECK(std::regex_search(j, std::regex("\"thp_mode\":\"(always|madvise|never)\"")));
    if (std::filesystem::exists("/proc/self/smaps_rollup")) {
      const double huge = number(j, "huge_page_bytes");
      CHECK(huge >= 0);
      CHECK(std::fmod(huge, 2.0 * 1024 * 1024) == 0);
    }
    CHECK(std::isfinite(ips));
    CHECK(ips > 0);
    // The whole step and the per-layer rows time the same work: same order of magnitude.
    double step = 32 * 1000.0 / ips;
    CHECK(sum > 0.2 * step);
    CHECK(sum < 5.0 * step);
  }
}

TEST_CASE("bench prints a table for LeNet with the arithmetic peak, the GEMM limit and the whole step") {
  RunResult r = run_mnistctl({"bench", "--threads", "1", "--batch", "8", "--iters", "2", "--warmup", "0"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("mnistctl bench: lenet on cpu") != std::string::npos);
  if (has_avx2_fma()) {  // a CPU the probe runs on
    CHECK(std::regex_search(r.out, std::regex("\narithmetic peak \\(AVX[-0-9]* FMA loop, 1 thread, multiply-adds on "
                                              "registers only, measured now\\): [0-9]+\\.[0-9] GFLOP/s\n")));
    CHECK(std::regex_search(r.out, std::regex("GEMM limit \\(fully-connected forward 2048x2048x2048, measured now\\): "
                                              "[0-9]+\\.[0-9] GFLOP/s, [0-9]+% of the peak\n")));
  } else {
    CHECK(std::regex_search(r.out, std::regex("GEMM limit \\(fully-connected forward 2048x2048x2048, measured now\\): "
                                              "[0-9]+\\.[0-9] GFLOP/s\n")));
  }
  for (const char* layer : {"conv1 ", "pool1 ", "conv2 ", "fc1 ", "fc2 ", "softmax ", "optimizer "})
    CHECK(r.out.find(std::string("\n") + layer) != std::string::npos);
  CHECK(std::regex_search(r.out, std::regex("whole step, measured apart: [0-9.]+ ms median .* [0-9]+ images/s")));
  if (std::filesystem::exists("/proc/self/smaps_rollup"))
    CHECK(std::regex_search(r.out, std::regex("\nhost memory on 2 MiB pages: [0-9]+ MiB \\(transparent huge pages: "
                                              "(always|madvise|never|not in this kernel)\\)\n")));
  // The layout plan on the CPU (nn/network.h): channels-last from conv1 to tanh2, then NCHW.
  CHECK(std::regex_search(r.out, std::regex("\nconv1 +convolution +20x24x24 nhwc ")));
  CHECK(std::regex_search(r.out, std::regex("\nconv2 +convolution +50x8x8 nhwc ")));
  CHECK(std::regex_search(r.out, std::regex("\npool2 +pooling +50x4x4 +[0-9]")));
}

TEST_CASE("bench's peak probe follows oneDNN's ISA cap, and an OpenMP thread limit below --threads is obeyed") {
  // Capped at AVX2, oneDNN's kernels are 256 bits wide, and so is the probe they are compared
  // with; a CPU without AVX2 FMA has no probe at all.
  RunResult a = run_mnistctl({"bench", "--config", config_file("mlp.yaml"), "--threads", "1", "--iters", "2",
                              "--warmup", "0", "--json"},
                             {}, {"DNNL_MAX_CPU_ISA=AVX2"});
  INFO(a.err);
  REQUIRE(a.code == 0);
  if (has_avx2_fma())
    CHECK(a.out.find("\"peak_probe\":\"AVX2 FMA loop, 1 thread\"") != std::string::npos);
  else
    CHECK(a.out.find("\"peak_gflops\":null,\"peak_probe\":null,") != std::string::npos);
  // OMP_THREAD_LIMIT=1 with --threads 2: oneDNN's regions would get one thread where their
  // work was split for two, and some of its kernels then wait forever. The backend runs with 1.
  RunResult l = run_mnistctl({"bench", "--config", config_file("mlp.yaml"), "--threads", "2", "--iters", "2",
                              "--warmup", "0"},
                             {}, {"OMP_THREAD_LIMIT=1", "OMP_DYNAMIC=true"});
  INFO(l.err);
  REQUIRE(l.code == 0);
  CHECK(l.out.find("mnistctl bench: mlp on cpu (oneDNN ") != std::string::npos);
  CHECK(l.out.find(", 1 thread), batch 100") != std::string::npos);
}

TEST_CASE("bench refuses bad arguments with exit 2") {
  CHECK(run_mnistctl({"bench", "--iters", "0"}).code == 2);
  CHECK(run_mnistctl({"bench", "--config", "no-such-file.yaml"}).code == 2);
  RunResult r = run_mnistctl({"bench", "--set", "network.layers.0.num_filter=0"});
  CHECK(r.code == 2);
  CHECK(r.err.find("num_filter") != std::string::npos);
}
