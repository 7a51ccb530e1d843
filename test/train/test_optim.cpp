// Optimizers, schedules and initializers against their formulas, computed here in double.
#include <cmath>

#include <catch2/catch.hpp>

#include "backend/backend.h"
#include "core/rng.h"
#include "train/initializer.h"
#include "train/optimizer.h"
#include "train/schedule.h"

using namespace mnistctl;

namespace {
Param make_param(Backend& be, const std::string& name, Shape s, bool bias) {
  Param p;
  p.name = name;
  p.shape = s;
  p.is_bias = bias;
  p.fan_in = 6;
  p.fan_out = 4;
  p.value = be.zeros(s);
  p.grad = be.zeros(s);
  return p;
}
std::vector<float> get(Backend& be, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.download(t, v.data());
  return v;
}
}  // namespace

TEST_CASE("SGD with momentum and weight decay follows MXNet's update and biases get no decay") {
  for (const char* ctx : {"ref", "cpu"}) {
    auto be = make_backend(ctx);
    Param w = make_param(*be, "fc.weight", {4}, false), b = make_param(*be, "fc.bias", {4}, true);
    std::vector<float> w0 = {0.5f, -1.f, 2.f, 0.f}, g = {0.1f, 0.2f, -0.3f, 1.f};
    be->upload(w.value, w0.data());
    be->upload(b.value, w0.data());
    be->upload(w.grad, g.data());
    be->upload(b.grad, g.data());
    OptimizerSpec spec;
    spec.momentum = 0.9;
    spec.weight_decay = 0.01;
    Optimizer opt(spec, *be, {&w, &b});
    std::vector<double> ew(w0.begin(), w0.end()), eb = ew, mw(4, 0), mb(4, 0);
    for (int step = 0; step < 3; ++step) {
      opt.step(0.1f);
      for (int i = 0; i < 4; ++i) {
        mw[i] = 0.9 * mw[i] - 0.1 * (g[i] + 0.01 * ew[i]);
        ew[i] += mw[i];
        mb[i] = 0.9 * mb[i] - 0.1 * g[i];
        eb[i] += mb[i];
      }
    }
    auto gw = get(*be, w.value), gb = get(*be, b.value);
    for (int i = 0; i < 4; ++i) {
      CHECK(gw[i] == Approx(ew[i]).epsilon(1e-5));
      CHECK(gb[i] == Approx(eb[i]).epsilon(1e-5));
    }
    CHECK(opt.steps() == 3);
    CHECK(opt.state().size() == 2);  // one momentum tensor per parameter
  }
}

TEST_CASE("Adam follows Kingma & Ba with bias correction") {
  auto be = make_backend("ref");
  Param w = make_param(*be, "w", {3}, false);
  std::vector<float> w0 = {1.f, -2.f, 0.5f}, g = {0.3f, -0.1f, 2.f};
  be->upload(w.value, w0.data());
  be->upload(w.grad, g.data());
  OptimizerSpec spec;
  spec.type = "adam";
  Optimizer opt(spec, *be, {&w});
  std::vector<double> e(w0.begin(), w0.end()), m(3, 0), v(3, 0);
  for (int t = 1; t <= 4; ++t) {
    opt.step(0.01f);
    for (int i = 0; i < 3; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
      e[i] -= 0.01 * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  auto got = get(*be, w.value);
  for (int i = 0; i < 3; ++i) CHECK(got[i] == Approx(e[i]).epsilon(1e-5));
  CHECK(opt.state().size() == 2);
}

TEST_CASE("learning-rate schedules") {
  TrainSpec t;
  t.epochs = 10;
  t.optimizer.learning_rate = 0.1;
  CHECK(learning_rate_at(t, 7) == Approx(0.1));
  t.lr_schedule.type = "step";
  t.lr_schedule.factor = 0.5;
  t.lr_schedule.step_epochs = 3;
  CHECK(learning_rate_at(t, 2) == Approx(0.1));
  CHECK(learning_rate_at(t, 3) == Approx(0.05));
  CHECK(learning_rate_at(t, 9) == Approx(0.0125));
  t.lr_schedule.type = "cosine";
  t.lr_schedule.min_lr = 0.001;
  CHECK(learning_rate_at(t, 0) == Approx(0.1));
  CHECK(learning_rate_at(t, 5) == Approx(0.001 + 0.099 * 0.5));  // halfway
  CHECK(learning_rate_at(t, 9) > 0.001);  // the last epoch still learns
  CHECK(learning_rate_at(t, 9) == Approx(0.001 + 0.099 * (1 + std::cos(3.14159265358979 * 0.9)) / 2));
  CHECK(learning_rate_at(t, 9) < learning_rate_at(t, 8));
}

TEST_CASE("initializers: ranges and zero biases and determinism per seed") {
  auto be = make_backend("ref");
  Param w = make_param(*be, "w", {64, 100}, false), b = make_param(*be, "b", {64}, true);
  std::vector<float> ones(64, 1.f);
  be->upload(b.value, ones.data());
  InitSpec init;  // uniform 0.01
  initialize_params(*be, {&w, &b}, init, 42);
  auto v = get(*be, w.value);
  double mean = 0;
  float lo = 1, hi = -1;
  for (float x : v) {
    mean += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  mean /= v.size();
  CHECK(lo >= -0.01f);
  CHECK(hi <= 0.01f);
  CHECK(hi - lo > 0.019f);  // fills the range
  CHECK(std::abs(mean) < 0.001);
  for (float x : get(*be, b.value)) CHECK(x == 0.f);
  initialize_params(*be, {&w, &b}, init, 42);
  CHECK(get(*be, w.value) == v);
  initialize_params(*be, {&w, &b}, init, 43);
  CHECK(get(*be, w.value) != v);

  init.type = "xavier";  // magnitude 3, avg: s = sqrt(3 / ((6 + 4) / 2))
  initialize_params(*be, {&w}, init, 1);
  float s = std::sqrt(3.f / 5.f), m = 0;
  for (float x : get(*be, w.value)) m = std::max(m, std::abs(x));
  CHECK(m <= s);
  CHECK(m > 0.95f * s);

  init.type = "kaiming";  // N(0, 2 / fan_in): std sqrt(1/3)
  initialize_params(*be, {&w}, init, 1);
  double sq = 0;
  for (float x : get(*be, w.value)) sq += double(x) * x;
  CHECK(std::sqrt(sq / 6400) == Approx(std::sqrt(2.0 / 6)).epsilon(0.05));
}
