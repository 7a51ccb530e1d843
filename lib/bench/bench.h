// `mnistctl bench`: one training step of a config's network timed layer by layer (Caffe's
// `caffe time`), on any backend.
//
// Two passes over the same bound network, on random bytes shaped like the dataset:
//   1. per layer: a LayerObserver brackets every layer's forward and backward call with a
//      backend synchronize() and a steady clock, plus the batch gather and the optimizer step
//      as rows of their own, so the rows cover the whole step;
//   2. whole step: the same step with no observer and one synchronize at its end.
// Both are printed, so the sum of the parts can be checked against the whole (per-layer
// synchronisation costs something; on a GPU it removes all overlap between launches).
// Each figure is the median of `iters` iterations after `warmup` ones, with the min and max.
//
// GFLOP/s: for layers with a weight (convolution, fully_connected) a multiply-add is 2 FLOPs:
// forward 2 * n * outputs * (weight elements per output); backward twice that when the layer
// also computes its input gradient, once otherwise. Other layers are memory-bound and get none.
// The GEMM limit is what this backend's own fully-connected forward reaches on a large square
// problem, measured once by the same run, so a layer's share of it is comparable across machines.
// Where the backend has a probe (Backend::measure_peak), the run also measures the arithmetic
// peak, which no kernel can beat, and prints the GEMM limit as a share of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"

namespace mnistctl {

struct BenchRequest {
  Config config;
  std::string ctx = "cpu";
  BackendOptions backend;
  int64_t batch = 0;   // 0: the config's train.batch_size
  int iters = 50;      // timed iterations per pass
  int warmup = 5;      // untimed iterations before each pass
};

struct Timing {
  double median_ms = 0, min_ms = 0, max_ms = 0;
};

struct LayerTiming {
  std::string name, type, output;      // output: per-sample shape, "" for the pseudo-rows
  std::string layout;                  // the output's layout (Network::output_layout): "nchw" or "nhwc"; "" for the pseudo-rows
  Timing forward;
  std::optional<Timing> backward;      // absent: no backward call (view layers, data, optimizer)
  double forward_flops = 0, backward_flops = 0;  // per call; 0 for memory-bound layers
};

struct BenchResult {
  std::string config_name, backend;
  int64_t batch = 0;
  int iters = 0, warmup = 0;
  std::string gemm_problem;  // e.g. "1024x1024x1024"
  double gemm_gflops = 0;    // the backend's measured fully-connected forward rate
  std::optional<ArithmeticPeak> peak;  // the backend's arithmetic peak, where it has a probe
  std::string thp_mode;          // the kernel's transparent-huge-page mode ("" where it has none)
  int64_t huge_page_bytes = -1;  // this process's memory on huge pages after the runs (-1: unknown)
  std::vector<LayerTiming> rows;  // "data", every layer, "optimizer"
  double sum_of_medians_ms = 0;
  Timing step;               // the whole step, no per-layer timers
  double images_per_s() const { return step.median_ms > 0 ? batch * 1000.0 / step.median_ms : 0.0; }
};

BenchResult bench_network(const BenchRequest& req);

std::string format_bench_text(const BenchResult& r);
std::string format_bench_json(const BenchResult& r);

}  // namespace mnistctl
