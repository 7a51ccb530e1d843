// See bench.h for what is timed and how.
#include "bench/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "core/huge_pages.h"
#include "core/json.h"
#include "core/rng.h"
#include "nn/network.h"
#include "train/initializer.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace mnistctl {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Timing summarize(std::vector<double> v) {
  Timing t;
  if (v.empty()) return t;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  t.median_ms = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  t.min_ms = v.front();
  t.max_ms = v.back();
  return t;
}

// Per-layer samples, recorded only while `recording` (warm-up iterations are not).
class Recorder : public LayerObserver {
 public:
  Recorder(Backend& be, size_t layers) : fwd_(layers), bwd_(layers), be_(be) {}
  void begin(size_t, bool) override {
    be_.synchronize();
    t0_ = Clock::now();
  }
  void end(size_t layer, bool backward) override {
    be_.synchronize();
    double ms = ms_since(t0_);
    if (recording) (backward ? bwd_ : fwd_)[layer].push_back(ms);
  }
  bool recording = false;
  std::vector<std::vector<double>> fwd_, bwd_;

 private:
  Backend& be_;
  Clock::time_point t0_;
};

// Multiply-adds of one forward call of a layer with a weight: every output element is a dot
// product over (weight elements / output channels) inputs.
double forward_flops(const Layer& l, int64_t batch) {
  for (const Param& p : l.params())
    if (!p.is_bias && p.shape.rank() >= 2)
      return 2.0 * static_cast<double>(batch) * static_cast<double>(l.out_shape().numel()) *
             (static_cast<double>(p.shape.numel()) / static_cast<double>(p.shape[0]));
  return 0.0;
}

// The backend's fully-connected forward rate on a square problem large enough to be
// compute-bound (larger on a GPU, where a small one only measures the launch).
double measure_gemm(Backend& be, std::string& problem) {
  const bool gpu = be.name().rfind("gpu", 0) == 0;
  const bool ref = be.name().rfind("ref", 0) == 0;
  const int64_t m = gpu ? 4096 : ref ? 256 : 2048;
  const int reps = ref ? 2 : 5;
  problem = fmt::format("{0}x{0}x{0}", m);
  FcDesc d{m, m, m, false};
  Tensor x = be.empty(Shape{m, m}), w = be.empty(Shape{m, m}), y = be.empty(Shape{m, m});
  be.fill(x, 0.5f);
  be.fill(w, 0.25f);
  be.fc_forward(d, x, w, nullptr, y);  // warm-up: primitive creation, first touch
  be.synchronize();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    be.fc_forward(d, x, w, nullptr, y);
    be.synchronize();
    t.push_back(ms_since(t0));
  }
  double ms = summarize(t).median_ms;
  return ms > 0 ? 2.0 * static_cast<double>(m) * m * m / (ms * 1e6) : 0.0;
}

std::string timing_json(const Timing& t) {
  return fmt::format("{{\"median\":{:.6f},\"min\":{:.6f},\"max\":{:.6f}}}", t.median_ms, t.min_ms, t.max_ms);
}

}  // namespace

BenchResult bench_network(const BenchRequest& req) {
  const Config& cfg = req.config;
  if (req.iters < 1 || req.warmup < 0) throw UsageError("bench: --iters must be at least 1 and --warmup at least 0");
  const int64_t batch = req.batch > 0 ? req.batch : cfg.train.batch_size;
  Network net(cfg.network);
  Config checked = cfg;
  checked.train.batch_size = batch;
  check_trainable(checked, net);  // a loss layer, the dataset's shapes, memory for the batch

  auto be = make_backend(req.ctx, req.backend);
  net.bind(*be, batch);
  Optimizer opt(cfg.train.optimizer, *be, net.params());
  initialize_params(*be, net.params(), cfg.init, static_cast<uint64_t>(cfg.train.seed));

  // Random bytes shaped like the dataset, already in backend memory as the trainer holds it,
  // and as many images as the MNIST training sets: the gather then reads a shuffled epoch's
  // rows from memory, not from a cache that a small set would stay in.
  const int64_t sample = net.input_shape().numel(), count = std::max<int64_t>(60000, batch);
  Pcg32 rng(static_cast<uint64_t>(cfg.train.seed), 0x42454e43 /* "BENC" */);
  std::vector<uint8_t> img, lab(static_cast<size_t>(count));
  reserve_on_huge_pages(img, static_cast<size_t>(count * sample));  // as the dataset loader does
  img.resize(static_cast<size_t>(count * sample));
  for (auto& v : img) v = static_cast<uint8_t>(rng.below(256));
  for (auto& v : lab) v = static_cast<uint8_t>(rng.below(static_cast<uint32_t>(net.num_classes())));
  std::vector<int32_t> ord(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) ord[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  rng.shuffle(ord);
  Buffer images = be->adopt_bytes(std::move(img)), labels_u8 = be->adopt_bytes(std::move(lab));
  Buffer order = be->alloc_bytes(ord.size() * sizeof(int32_t));
  be->upload_bytes(order, ord.data(), ord.size() * sizeof(int32_t));

  Tensor x = be->empty(batched(batch, net.input_shape())), labels = be->empty(Shape{batch});
  Tensor sums = be->zeros(Shape{kMetricSlots});
  const float lr = static_cast<float>(cfg.train.optimizer.learning_rate);
  int64_t first = 0;
  auto gather = [&] {
    if (first + batch > count) first = 0;
    be->gather_batch(images, labels_u8, sample, order, first, batch, x, labels);
    first += batch;
  };
  auto fwd_bwd = [&] {
    Pass pass;
    pass.train = true;
    pass.seed = static_cast<uint64_t>(cfg.train.seed);
    pass.counter = static_cast<uint64_t>(opt.steps());
    pass.labels = &labels;
    pass.metrics = &sums;
    net.forward(x, pass);
    net.backward();
  };

  BenchResult r;
  r.config_name = cfg.name;
  r.backend = be->name();
  r.batch = batch;
  r.iters = req.iters;
  r.warmup = req.warmup;
  r.peak = be->measure_peak();
  r.gemm_gflops = measure_gemm(*be, r.gemm_problem);
  // A GEMM on the units the loop measures cannot beat it, so a peak below the GEMM most likely
  // means the probe lost its core for part of its runs (another process, a virtual CPU
  // descheduled): measure it again, at most twice, and keep the best. (In bf16 with AMX the
  // CPU backend has no probe: its GEMMs run on the tile unit, which the loop does not measure.)
  for (int retry = 0; retry < 2 && r.peak && r.peak->gflops < r.gemm_gflops; ++retry) {
    if (auto again = be->measure_peak(); again && again->gflops > r.peak->gflops) r.peak = again;
  }

  // Pass 1: per layer.
  const auto& layers = net.layers();
  Recorder rec(*be, layers.size());
  net.set_observer(&rec);
  std::vector<double> data_ms, opt_ms;
  for (int it = 0; it < req.warmup + req.iters; ++it) {
    rec.recording = it >= req.warmup;
    be->synchronize();
    auto t0 = Clock::now();
    gather();
    be->synchronize();
    if (rec.recording) data_ms.push_back(ms_since(t0));
    fwd_bwd();
    be->synchronize();
    t0 = Clock::now();
    opt.step(lr);
    be->synchronize();
    if (rec.recording) opt_ms.push_back(ms_since(t0));
  }
  net.set_observer(nullptr);

  r.rows.push_back({"data", "gather", "", "", summarize(data_ms), std::nullopt, 0, 0});
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = *layers[i];
    if (l.is_view()) continue;
    LayerTiming row{l.name(), l.type(), l.out_shape().str(),
                    net.output_layout(i) == Layout::nhwc ? "nhwc" : "nchw", summarize(rec.fwd_[i]), std::nullopt, 0, 0};
    if (!rec.bwd_[i].empty()) row.backward = summarize(rec.bwd_[i]);
    row.forward_flops = forward_flops(l, batch);
    if (row.backward) row.backward_flops = row.forward_flops * (net.computes_input_grad(i) ? 2.0 : 1.0);
    r.rows.push_back(std::move(row));
  }
  r.rows.push_back({"optimizer", cfg.train.optimizer.type, "", "", summarize(opt_ms), std::nullopt, 0, 0});
  for (const auto& row : r.rows)
    r.sum_of_medians_ms += row.forward.median_ms + (row.backward ? row.backward->median_ms : 0.0);

  // Pass 2: the whole step, no per-layer synchronisation.
  std::vector<double> step_ms;
  for (int it = 0; it < req.warmup + req.iters; ++it) {
    be->synchronize();
    auto t0 = Clock::now();
    gather();
    fwd_bwd();
    opt.step(lr);
    be->synchronize();
    if (it >= req.warmup) step_ms.push_back(ms_since(t0));
  }
  r.step = summarize(step_ms);
  r.thp_mode = transparent_huge_pages_mode();
  r.huge_page_bytes = process_huge_page_bytes();

  float m[kMetricSlots];
  be->download(sums, m);
  if (!std::isfinite(m[kMetricLossSum]))
    throw RuntimeError(fmt::format("bench: the loss became {} (the config's learning rate diverges on random data)",
                                   std::isnan(m[kMetricLossSum]) ? "NaN" : "infinite"));
  return r;
}

std::string format_bench_text(const BenchResult& r) {
  auto gflops = [](double flops, double ms) { return flops > 0 && ms > 0 ? flops / (ms * 1e6) : 0.0; };
  auto cell = [&](const Timing& t) { return fmt::format("{:8.3f} ({:.3f}-{:.3f})", t.median_ms, t.min_ms, t.max_ms); };
  auto rate = [&](double flops, double ms) {
    double g = gflops(flops, ms);
    return g > 0 ? fmt::format("{:7.1f} {:4.0f}%", g, r.gemm_gflops > 0 ? 100.0 * g / r.gemm_gflops : 0.0)
                 : fmt::format("{:>12}", "-");
  };
  std::string s = fmt::format("mnistctl bench: {} on {}, batch {}, median of {} iterations after {} warm-up\n",
                              r.config_name, r.backend, r.batch, r.iters, r.warmup);
  if (r.peak)
    s += fmt::format("arithmetic peak ({}, multiply-adds on registers only, measured now): {:.1f} GFLOP/s\n",
                     r.peak->probe, r.peak->gflops);
  s += fmt::format("GEMM limit (fully-connected forward {}, measured now): {:.1f} GFLOP/s", r.gemm_problem,
                   r.gemm_gflops);
  if (r.peak && r.peak->gflops > 0) s += fmt::format(", {:.0f}% of the peak", 100.0 * r.gemm_gflops / r.peak->gflops);
  // Host memory on 4 KiB pages costs the memory-bound layers page walks (core/huge_pages.h):
  // where the kernel gives no huge pages, this line says why those rows are slower here.
  if (r.huge_page_bytes >= 0)
    s += fmt::format("\nhost memory on 2 MiB pages: {:.0f} MiB (transparent huge pages: {})", r.huge_page_bytes / 1048576.0,
                     r.thp_mode.empty() ? "not in this kernel" : r.thp_mode);
  // The limit is a large GEMM's, from memory; a small layer that stays in cache can pass it.
  s += "\n(\"lim\": a layer's share of the GEMM limit; a small layer whose data stays in cache can exceed 100%)\n\n";
  // The output's layout is shown where it is not the default NCHW (the layout plan).
  s += fmt::format("{:<14} {:<16} {:<14} {:>26} {:>12} {:>26} {:>12}\n", "layer", "type", "output",
                   "forward ms (min-max)", "GFLOP/s lim", "backward ms (min-max)", "GFLOP/s lim");
  for (const auto& row : r.rows) {
    const std::string output = row.layout == "nhwc" ? row.output + " nhwc" : row.output;
    s += fmt::format("{:<14} {:<16} {:<14} {:>26} {:>12} {:>26} {:>12}\n", row.name, row.type, output,
                     cell(row.forward), rate(row.forward_flops, row.forward.median_ms),
                     row.backward ? cell(*row.backward) : std::string("-"),
                     row.backward ? rate(row.backward_flops, row.backward->median_ms) : std::string("-"));
  }
  s += fmt::format("\nsum of the rows' medians: {:.3f} ms per step (with per-layer synchronisation)\n",
                   r.sum_of_medians_ms);
  s += fmt::format("whole step, measured apart: {:.3f} ms median ({:.3f}-{:.3f}), {:.0f} images/s\n",
                   r.step.median_ms, r.step.min_ms, r.step.max_ms, r.images_per_s());
  return s;
}

std::string format_bench_json(const BenchResult& r) {
  std::string s = fmt::format(
      "{{\"config\":{},\"backend\":{},\"batch\":{},\"iters\":{},\"warmup\":{},\"gemm_problem\":{},"
      "\"gemm_gflops\":{:.3f},\"peak_gflops\":{},\"peak_probe\":{},\"thp_mode\":{},\"huge_page_bytes\":{},\"rows\":[",
      json_string(r.config_name), json_string(r.backend), r.batch, r.iters, r.warmup, json_string(r.gemm_problem),
      r.gemm_gflops, r.peak ? fmt::format("{:.3f}", r.peak->gflops) : std::string("null"),
      r.peak ? json_string(r.peak->probe) : std::string("null"),
      r.thp_mode.empty() ? std::string("null") : json_string(r.thp_mode),
      r.huge_page_bytes >= 0 ? std::to_string(r.huge_page_bytes) : std::string("null"));
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const auto& row = r.rows[i];
    s += fmt::format("{}{{\"name\":{},\"type\":{},\"output\":{},\"layout\":{},\"forward_ms\":{},\"backward_ms\":{},"
                     "\"forward_flops\":{:.0f},\"backward_flops\":{:.0f}}}",
                     i ? "," : "", json_string(row.name), json_string(row.type), json_string(row.output),
                     row.layout.empty() ? std::string("null") : json_string(row.layout),
                     timing_json(row.forward), row.backward ? timing_json(*row.backward) : std::string("null"),
                     row.forward_flops, row.backward_flops);
  }
  s += fmt::format("],\"sum_of_medians_ms\":{:.6f},\"step_ms\":{},\"images_per_s\":{:.1f}}}", r.sum_of_medians_ms,
                   timing_json(r.step), r.images_per_s());
  return s;
}

}  // namespace mnistctl
