// Numerical gradient checks for every layer type, on the reference and the CPU backend.
//
// Each case is a small network (YAML) whose first layer has parameters, so the gradient of
// the layer under test with respect to its input (backward-data) is checked too: it flows
// into the first layer's parameter gradients. The scalar is L = sum(y * r) for a fixed
// random r, or the mean cross-entropy for networks ending in softmax_output. Analytic
// gradients from backward() are compared with central differences for a sample of entries
// of every parameter; the max relative difference is printed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <catch2/catch.hpp>

#include <set>

#include "core/rng.h"
#include "nn/network.h"
#include "nn/registry.h"

using namespace mnistctl;

namespace {

struct Case {
  const char* name;
  const char* yaml;
};

const Case kCases[] = {
    {"fully_connected", R"(network: {input: [1, 3, 4], layers: [
        {type: fully_connected, num_hidden: 6}, {type: fully_connected, num_hidden: 4}]})"},
    {"fully_connected no_bias", R"(network: {input: [5], layers: [
        {type: fully_connected, num_hidden: 3, no_bias: true}, {type: fully_connected, num_hidden: 2, no_bias: true}]})"},
    {"convolution", R"(network: {input: [2, 7, 7], layers: [
        {type: convolution, kernel: 3, num_filter: 3, pad: 1},
        {type: convolution, kernel: [2, 3], num_filter: 2, stride: 2, pad: [0, 1]}]})"},
    {"convolution no_bias stride", R"(network: {input: [1, 9, 8], layers: [
        {type: convolution, kernel: [3, 2], num_filter: 2, stride: [2, 1], no_bias: true},
        {type: convolution, kernel: 2, num_filter: 3, stride: 2}]})"},
    {"pooling max", R"(network: {input: [2, 8, 8], layers: [
        {type: convolution, kernel: 3, num_filter: 2, pad: 1},
        {type: pooling, pool_type: max, kernel: 2, stride: 2}]})"},
    {"pooling max overlapping", R"(network: {input: [1, 7, 7], layers: [
        {type: convolution, kernel: 2, num_filter: 2},
        {type: pooling, pool_type: max, kernel: 3, stride: 2}]})"},
    {"pooling avg padded", R"(network: {input: [2, 7, 7], layers: [
        {type: convolution, kernel: 3, num_filter: 2, pad: 1},
        {type: pooling, pool_type: avg, kernel: 3, stride: 2, pad: 1}]})"},
    {"activation relu", R"(network: {input: [7], layers: [
        {type: fully_connected, num_hidden: 6}, {type: activation, act_type: relu}]})"},
    {"activation tanh", R"(network: {input: [7], layers: [
        {type: fully_connected, num_hidden: 6}, {type: activation, act_type: tanh}]})"},
    {"activation sigmoid", R"(network: {input: [7], layers: [
        {type: fully_connected, num_hidden: 6}, {type: activation, act_type: sigmoid}]})"},
    {"activation softrelu", R"(network: {input: [7], layers: [
        {type: fully_connected, num_hidden: 6}, {type: activation, act_type: softrelu}]})"},
    {"dropout", R"(network: {input: [7], layers: [
        {type: fully_connected, num_hidden: 16}, {type: dropout, p: 0.3}, {type: fully_connected, num_hidden: 3}]})"},
    {"flatten", R"(network: {input: [1, 6, 6], layers: [
        {type: convolution, kernel: 3, num_filter: 2}, {type: flatten}, {type: fully_connected, num_hidden: 3}]})"},
    {"softmax_output", R"(network: {input: [6], layers: [
        {type: fully_connected, num_hidden: 5}, {type: softmax_output}]})"},
    // An activation followed by a max pooling runs as pool -> activation (network.h).
    {"relu then overlapping padded max pool", R"(network: {input: [2, 7, 7], layers: [
        {type: convolution, kernel: 2, num_filter: 3}, {type: activation, act_type: relu},
        {type: pooling, pool_type: max, kernel: 3, stride: 2, pad: 1}]})"},
    {"sigmoid then max pool, then more", R"(network: {input: [1, 8, 8], layers: [
        {type: convolution, kernel: 3, num_filter: 2, pad: 1}, {type: activation, act_type: sigmoid},
        {type: pooling, pool_type: max, kernel: 2, stride: 2}, {type: flatten},
        {type: fully_connected, num_hidden: 3}]})"},
    {"lenet-like", R"(network: {input: [1, 12, 12], layers: [
        {type: convolution, kernel: 3, num_filter: 3}, {type: activation, act_type: tanh},
        {type: pooling, kernel: 2, stride: 2},
        {type: convolution, kernel: 3, num_filter: 4}, {type: activation, act_type: tanh},
        {type: pooling, kernel: 2, stride: 2}, {type: flatten},
        {type: fully_connected, num_hidden: 8}, {type: activation, act_type: tanh},
        {type: fully_connected, num_hidden: 5}, {type: softmax_output}]})"},
};

std::vector<float> random_vec(Pcg32& rng, int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(-scale, scale);
  return v;
}

// Runs one forward pass and returns the scalar objective in double.
double objective(Network& net, Backend& be, const Tensor& x, const Tensor& labels, Tensor& metrics,
                 const std::vector<float>& r, bool has_loss) {
  Pass pass;
  pass.train = true;  // dropout active, with the same mask every call
  pass.seed = 7;
  pass.counter = 3;
  if (has_loss) {
    be.fill(metrics, 0.0f);
    pass.labels = &labels;
    pass.metrics = &metrics;
  }
  const Tensor& y = net.forward(x, pass);
  if (has_loss) {
    float m[kMetricSlots];
    be.download(metrics, m);
    return static_cast<double>(m[kMetricLossSum]) / static_cast<double>(x.shape[0]);
  }
  std::vector<float> yh(static_cast<size_t>(y.numel()));
  be.download(y, yh.data());
  double s = 0;
  for (size_t i = 0; i < yh.size(); ++i) s += static_cast<double>(yh[i]) * r[i];
  return s;
}

void gradcheck(const Case& c, const std::string& ctx) {
  Config cfg = load_config_text(c.yaml, c.name);
  Network net(cfg.network);
  auto be = make_backend(ctx);
  const int64_t n = 3;
  net.bind(*be, n);
  Pcg32 rng(1234);
  for (Param* p : net.params()) {
    auto v = random_vec(rng, p->shape.numel(), 0.5f);
    be->upload(p->value, v.data());
  }
  Shape xs{n};
  xs.dims.insert(xs.dims.end(), net.input_shape().dims.begin(), net.input_shape().dims.end());
  Tensor x = be->empty(xs);
  auto xv = random_vec(rng, x.numel(), 1.0f);
  be->upload(x, xv.data());
  Tensor labels = be->empty(Shape{n});
  std::vector<float> lab(static_cast<size_t>(n));
  for (auto& l : lab) l = static_cast<float>(rng.below(static_cast<uint32_t>(net.num_classes())));
  be->upload(labels, lab.data());
  Tensor metrics = be->zeros(Shape{kMetricSlots});
  Shape ys{n};
  ys.dims.insert(ys.dims.end(), net.output_shape().dims.begin(), net.output_shape().dims.end());
  std::vector<float> r = random_vec(rng, ys.numel(), 1.0f);
  Tensor dy = be->empty(ys);
  be->upload(dy, r.data());
  const bool loss = net.has_loss();

  objective(net, *be, x, labels, metrics, r, loss);
  net.backward(loss ? nullptr : &dy);

  double worst = 0;
  int checked = 0, skipped = 0;
  for (Param* p : net.params()) {
    std::vector<float> w(static_cast<size_t>(p->shape.numel())), g(w.size());
    be->download(p->value, w.data());
    be->download(p->grad, g.data());
    // Up to 12 entries per parameter, spread over the tensor.
    size_t step = std::max<size_t>(1, w.size() / 12);
    for (size_t i = 0; i < w.size(); i += step) {
      auto central = [&](float eps) {
        float saved = w[i];
        w[i] = saved + eps;
        be->upload(p->value, w.data());
        double lp = objective(net, *be, x, labels, metrics, r, loss);
        w[i] = saved - eps;
        be->upload(p->value, w.data());
        double lm = objective(net, *be, x, labels, metrics, r, loss);
        w[i] = saved;
        be->upload(p->value, w.data());
        return (lp - lm) / (2.0 * eps);
      };
      double numeric = central(1e-3f), half = central(5e-4f);
      // Two step sizes that disagree mean a kink (a max-pool switch, relu at 0) lies
      // within reach: finite differences say nothing there, so the entry is skipped.
      if (std::abs(numeric - half) > 1e-2 * std::max({std::abs(numeric), std::abs(half), 1e-1})) {
        ++skipped;
        continue;
      }
      ++checked;
      double analytic = g[i];
      double diff = std::abs(numeric - analytic) / std::max({std::abs(numeric), std::abs(analytic), 1e-1});
      worst = std::max(worst, diff);
      INFO(c.name << " on " << ctx << ": " << p->name << "[" << i << "] analytic " << analytic
                  << " numeric " << numeric);
      CHECK(diff < 1e-2);
    }
  }
  INFO(c.name << " on " << ctx << ": " << skipped << " entries skipped at kinks, " << checked << " checked");
  CHECK(skipped * 4 < checked);
  std::printf("gradcheck %-28s %-4s max relative difference %.2e (%d entries, %d skipped at kinks)\n", c.name,
              ctx.c_str(), worst, checked, skipped);
}

}  // namespace

TEST_CASE("every layer's backward matches finite differences (ref backend)", "[gradcheck]") {
  for (const auto& c : kCases) gradcheck(c, "ref");
}

TEST_CASE("every layer's backward matches finite differences (cpu backend)", "[gradcheck]") {
  for (const auto& c : kCases) gradcheck(c, "cpu");
}

TEST_CASE("gradient checks cover every registered layer type", "[gradcheck]") {
  // The exact type of every layer the cases build, against the registry's list.
  std::set<std::string> covered;
  for (const auto& c : kCases) {
    Network net(load_config_text(c.yaml, c.name).network);
    for (const auto& layer : net.layers()) covered.insert(layer->type());
  }
  const std::vector<std::string> types = LayerRegistry::types();
  REQUIRE(!types.empty());
  for (const auto& type : types) {
    INFO("layer type without a gradient check: " << type);
    CHECK(covered.count(type) == 1);
  }
  CHECK(covered == std::set<std::string>(types.begin(), types.end()));
}
