// BF16 parity: the CPU backend at Precision::bf16 against the FP32 reference, op by op, for
// the ops BF16 changes (convolution and fully connected, every direction, LeNet's and the
// MLP's shapes). BF16 keeps 8 significant bits, so each input is off by up to 2^-9
// relative; the products accumulate in FP32. The tolerance is stated per comparison:
// max|bf16 - ref| / max|ref| <= 1e-2. The same comparisons also require a difference of
// at least 1e-6: a backend that silently ran FP32 would pass the first check, not this one.
// Any NaN or Inf on either side fails. Where the CPU lacks BF16 (or DNNL_MAX_CPU_ISA caps
// it), the process says so and exits with ctest's skip code before asserting anything.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "backend/backend.h"
#include "backend/cpu/cpu_features.h"
#include "layouts.h"
#include "test_util.h"
#include "core/rng.h"

using namespace mnistctl;

namespace {

constexpr double kBf16Tol = 1e-2;
constexpr double kMinDiff = 1e-6;

using Host = std::vector<float>;

// The bf16 CPU backend, or a skip (missing hardware) said before any assertion.
Backend& bf16() {
  static std::unique_ptr<Backend> b = [] {
    try {
      check_precision("cpu", Precision::bf16, "test");
    } catch (const std::exception& e) {
      test::skip_test(std::string("no BF16 on this CPU: ") + e.what());
    }
    BackendOptions o;
    o.precision = Precision::bf16;
    return make_backend("cpu", o);
  }();
  return *b;
}

// Whether oneDNN's kernels use AMX on this CPU (DNNL_MAX_CPU_ISA can cap it), asked of
// oneDNN itself, apart from the backend's own answer.
bool dnnl_cpu_isa_is_amx() { return dnnl::get_effective_cpu_isa() == dnnl::cpu_isa::avx512_core_amx; }

// A bf16 CPU backend made with MNISTCTL_DNNL_CONV_BACKWARD set to `knob` (null: unset, the
// default). After bf16(), which skips where there is no BF16.
std::unique_ptr<Backend> bf16_with(const char* knob, bool single_onednn = false) {
  test::EnvGuard env("MNISTCTL_DNNL_CONV_BACKWARD", knob ? std::optional<std::string>(knob) : std::nullopt);
  test::EnvGuard no_layout("MNISTCTL_DNNL_LAYOUT", std::nullopt),
      single("MNISTCTL_DNNL_SINGLE_CHANNEL", single_onednn ? std::optional<std::string>("onednn") : std::nullopt);
  BackendOptions o;
  o.precision = Precision::bf16;
  return make_backend("cpu", o);
}

Backend& ref() {
  static std::unique_ptr<Backend> b = make_backend("ref");
  return *b;
}

Host random_host(Pcg32& rng, int64_t n) {
  Host v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

Tensor up(Backend& b, const Shape& s, const Host& h) {
  Tensor t = b.empty(s);
  b.upload(t, h.data());
  return t;
}

Host down(Backend& b, const Tensor& t) {
  Host h(static_cast<size_t>(t.numel()));
  b.download(t, h.data());
  return h;
}

// Prints and checks one output: finite on both sides, relative difference within the BF16
// tolerance, and not identical to FP32.
void compare(const std::string& what, const Host& got, const Host& want) {
  REQUIRE(got.size() == want.size());
  double max_ref = 0, max_diff = 0;
  bool finite = true;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i]) || !std::isfinite(want[i])) finite = false;
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(want[i])));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  const double rel = max_diff / std::max(max_ref, 1e-6);
  std::printf("bf16 %-44s max abs diff %.3e  rel %.3e (tolerance %.0e)\n", what.c_str(), max_diff, rel, kBf16Tol);
  INFO(what << ": max abs diff " << max_diff << ", rel " << rel);
  CHECK(finite);
  CHECK(rel <= kBf16Tol);
  CHECK(max_diff >= kMinDiff);
}

// One layer (convolution or fully connected), every direction, on the BF16 backend ([0]) and
// on ref ([1]) from the same random x, w, b and dy: y, dx, dw, and db when `with_db`.
// `run(be, x, w, b, dy, y, dx, dw, db)` calls the layer's three ops; b and db are null
// without a bias.
template <class Run>
std::array<std::vector<Host>, 2> bf16_and_ref(Pcg32& rng, bool bias, bool with_db, const Shape& xs, const Shape& ws,
                                              const Shape& ys, const Shape& bs, const Run& run) {
  Host x = random_host(rng, xs.numel()), w = random_host(rng, ws.numel()), b = random_host(rng, bs.numel());
  Host dy = random_host(rng, ys.numel());
  std::array<std::vector<Host>, 2> results;
  Backend* backends[2] = {&bf16(), &ref()};
  for (int i = 0; i < 2; ++i) {
    Backend& be = *backends[i];
    Tensor tx = up(be, xs, x), tw = up(be, ws, w), tb = up(be, bs, b), tdy = up(be, ys, dy);
    Tensor ty = be.empty(ys), tdx = be.empty(xs), tdw = be.empty(ws), tdb = be.empty(bs);
    run(be, tx, tw, bias ? &tb : nullptr, tdy, ty, tdx, tdw, bias ? &tdb : nullptr);
    results[i] = {down(be, ty), down(be, tdx), down(be, tdw)};
    if (bias && with_db) results[i].push_back(down(be, tdb));
  }
  return results;
}

}  // namespace

TEST_CASE("bf16 convolution matches the fp32 reference within 1e-2", "[bf16][conv]") {
  bf16();  // skips first where there is no BF16
  struct Case {
    const char* name;
    ConvDesc d;
  };
  const Case cases[] = {
      {"lenet conv1", {100, 1, 28, 28, 20, 5, 5, 1, 1, 0, 0, true}},
      {"lenet conv2", {100, 20, 12, 12, 50, 5, 5, 1, 1, 0, 0, true}},
      {"odd: stride 2 pad 1 no bias", {3, 3, 9, 7, 5, 3, 3, 2, 2, 1, 1, false}},
  };
  Pcg32 rng(7, 1);
  for (const Case& c : cases) {
    const ConvDesc& d = c.d;
    const auto results = bf16_and_ref(
        rng, d.bias, /*with_db=*/true, Shape{d.n, d.c, d.h, d.w}, Shape{d.k, d.c, d.kh, d.kw},
        Shape{d.n, d.k, d.oh(), d.ow()}, Shape{d.k},
        [&](Backend& be, Tensor& x, Tensor& w, Tensor* b, Tensor& dy, Tensor& y, Tensor& dx, Tensor& dw, Tensor* db) {
          be.conv_forward(d, x, w, b, y);
          be.conv_backward_data(d, dy, w, dx);
          be.conv_backward_weights(d, x, dy, dw, db);
        });
    const char* outs[] = {"forward", "backward-data", "backward-weights", "backward-bias"};
    for (size_t k = 0; k < results[0].size(); ++k) {
      // The bias gradient sums dy, which stays FP32-exact only up to summation order: it is
      // not an input BF16 rounds, so it is only checked against the tolerance.
      if (k == 3) {
        double max_ref = 0, max_diff = 0;
        for (size_t i = 0; i < results[0][k].size(); ++i) {
          REQUIRE(std::isfinite(results[0][k][i]));
          max_ref = std::max(max_ref, std::fabs(static_cast<double>(results[1][k][i])));
          max_diff = std::max(max_diff, std::fabs(static_cast<double>(results[0][k][i]) - results[1][k][i]));
        }
        CHECK(max_diff / std::max(max_ref, 1e-6) <= kBf16Tol);
        continue;
      }
      compare(std::string(c.name) + " " + outs[k], results[0][k], results[1][k]);
    }
  }
}

// The same on channels-last tensors (the layout plan hands LeNet's convolutions nhwc on the
// CPU): the BF16 backend's x, y, dx and dy are nhwc, ref's NCHW, compared in NCHW order.
TEST_CASE("bf16 convolution on channels-last tensors matches the fp32 reference within 1e-2", "[bf16][conv][nhwc]") {
  bf16();  // skips first where there is no BF16
  const ConvDesc convs[] = {{100, 1, 28, 28, 20, 5, 5, 1, 1, 0, 0, true}, {100, 20, 12, 12, 50, 5, 5, 1, 1, 0, 0, true}};
  // Every backward plan of dnnl_backend.cpp, on any CPU: the default, and each forced.
  const char* knobs[] = {nullptr, "direct", "gemm", "amx"};
  for (const char* knob : knobs) {
  std::unique_ptr<Backend> be = bf16_with(knob);
  std::printf("%s\n", be->name().c_str());
  Pcg32 rng(8, 1);
  for (const ConvDesc& d : convs) {
    const Shape xs{d.n, d.c, d.h, d.w}, ws{d.k, d.c, d.kh, d.kw}, ys{d.n, d.k, d.oh(), d.ow()};
    const Host x = random_host(rng, xs.numel()), w = random_host(rng, ws.numel()), b = random_host(rng, d.k);
    const Host dy = random_host(rng, ys.numel());
    auto run = [&](Backend& be, Layout l) {
      Tensor tx = test::upload_as(be, xs, x, l), tdy = test::upload_as(be, ys, dy, l);
      Tensor ty = test::empty_as(be, ys, l), tdx = test::empty_as(be, xs, l);
      Tensor tw = up(be, ws, w), tb = up(be, {d.k}, b), tdw = be.empty(ws), tdb = be.empty({d.k});
      be.conv_forward(d, tx, tw, &tb, ty);
      be.conv_backward_data(d, tdy, tw, tdx);
      be.conv_backward_weights(d, tx, tdy, tdw, &tdb);
      return std::vector<Host>{test::download_nchw(be, ty), test::download_nchw(be, tdx), down(be, tdw)};
    };
    const auto got = run(*be, Layout::nhwc), want = run(ref(), Layout::nchw);
    const std::string name = std::string(d.c == 1 ? "lenet conv1 nhwc" : "lenet conv2 nhwc") + (knob ? " " : "") +
                             (knob ? knob : "");
    compare(name + " forward", got[0], want[0]);
    compare(name + " backward-data", got[1], want[1]);
    compare(name + " backward-weights", got[2], want[2]);
  }
  }
}

// The plan the default takes for LeNet's conv2 in bf16: on a CPU where oneDNN runs AMX, the
// AMX plan (dnnl_backend.cpp, backward_path); elsewhere the lowered one ("gemm"). Each
// gradient equals the expected plan's bit for bit and differs from the other's.
TEST_CASE("bf16 conv2's backward takes the AMX plan exactly where oneDNN uses AMX", "[bf16][conv][nhwc]") {
  bf16();  // skips first where there is no BF16
  const bool amx = dnnl_cpu_isa_is_amx();
  std::printf("oneDNN's ISA here %s AMX: the default should be the %s plan\n", amx ? "has" : "lacks",
              amx ? "amx" : "gemm");
  const ConvDesc d{100, 20, 12, 12, 50, 5, 5, 1, 1, 0, 0, true};
  const Shape xs{d.n, d.c, d.h, d.w}, ws{d.k, d.c, d.kh, d.kw}, ys{d.n, d.k, d.oh(), d.ow()};
  Pcg32 rng(9, 1);
  const Host x = random_host(rng, xs.numel()), w = random_host(rng, ws.numel()), dy = random_host(rng, ys.numel());
  auto grads = [&](const char* knob) {
    std::unique_ptr<Backend> be = bf16_with(knob);
    Tensor tx = test::upload_as(*be, xs, x, Layout::nhwc), tdy = test::upload_as(*be, ys, dy, Layout::nhwc);
    Tensor tdx = test::empty_as(*be, xs, Layout::nhwc), tw = up(*be, ws, w), tdw = be->empty(ws);
    be->conv_backward_data(d, tdy, tw, tdx);
    be->conv_backward_weights(d, tx, tdy, tdw, nullptr);
    return std::vector<Host>{test::download_nchw(*be, tdx), down(*be, tdw)};
  };
  const auto def = grads(nullptr), with_amx = grads("amx"), with_gemm = grads("gemm");
  const auto& expected = amx ? with_amx : with_gemm;
  const auto& other = amx ? with_gemm : with_amx;
  for (int i = 0; i < 2; ++i) {
    INFO((i == 0 ? "dx" : "dW"));
    CHECK(def[i] == expected[i]);
    CHECK(def[i] != other[i]);
  }
}

// conv1's forward (one input channel) in bf16: with AMX, oneDNN's kernel; elsewhere the CPU's
// own loops (single_channel_conv.h, where AVX-512F has them). Its backward-weights stays on
// the loops wherever they run.
TEST_CASE("bf16 conv1's forward runs on oneDNN exactly where oneDNN uses AMX", "[bf16][conv][nhwc]") {
  bf16();  // skips first where there is no BF16
  const bool amx = dnnl_cpu_isa_is_amx();
  const ConvDesc d{100, 1, 28, 28, 20, 5, 5, 1, 1, 0, 0, true};
  const Shape xs{d.n, d.c, d.h, d.w}, ws{d.k, d.c, d.kh, d.kw}, ys{d.n, d.k, d.oh(), d.ow()};
  Pcg32 rng(10, 1);
  const Host x = random_host(rng, xs.numel()), w = random_host(rng, ws.numel()), b = random_host(rng, d.k);
  const Host dy = random_host(rng, ys.numel());
  auto run = [&](bool single_onednn) {
    std::unique_ptr<Backend> be = bf16_with(nullptr, single_onednn);
    Tensor tx = test::upload_as(*be, xs, x, Layout::nhwc), tdy = test::upload_as(*be, ys, dy, Layout::nhwc);
    Tensor ty = test::empty_as(*be, ys, Layout::nhwc), tw = up(*be, ws, w), tb = up(*be, {d.k}, b);
    Tensor tdw = be->empty(ws);
    be->conv_forward(d, tx, tw, &tb, ty);
    be->conv_backward_weights(d, tx, tdy, tdw, nullptr);
    return std::vector<Host>{test::download_nchw(*be, ty), down(*be, tdw)};
  };
  const auto def = run(false), onednn = run(true);
  std::printf("oneDNN's ISA here %s AMX; the loops %s here\n", amx ? "has" : "lacks",
              cpu::cpu_has_avx512f() ? "run" : "do not run");
  if (amx) {
    CHECK(def[0] == onednn[0]);
  } else if (cpu::cpu_has_avx512f()) {
    CHECK(def[0] != onednn[0]);
  }
  if (cpu::cpu_has_avx512f()) CHECK(def[1] != onednn[1]);  // backward-weights: the loops
}

TEST_CASE("bf16 fully connected matches the fp32 reference within 1e-2", "[bf16][fc]") {
  bf16();  // skips first where there is no BF16
  const FcDesc cases[] = {{100, 800, 500, true}, {100, 500, 10, true}, {100, 784, 128, true}, {1, 7, 3, false}};
  Pcg32 rng(11, 2);
  for (const FcDesc& d : cases) {
    const std::string name = "fc " + std::to_string(d.in) + "->" + std::to_string(d.out) + " n=" + std::to_string(d.n);
    const auto results = bf16_and_ref(
        rng, d.bias, /*with_db=*/false, Shape{d.n, d.in}, Shape{d.out, d.in}, Shape{d.n, d.out}, Shape{d.out},
        [&](Backend& be, Tensor& x, Tensor& w, Tensor* b, Tensor& dy, Tensor& y, Tensor& dx, Tensor& dw, Tensor* db) {
          be.fc_forward(d, x, w, b, y);
          be.fc_backward_data(d, dy, w, dx);
          be.fc_backward_weights(d, x, dy, dw, db);
        });
    compare(name + " forward", results[0][0], results[1][0]);
    compare(name + " backward-data", results[0][1], results[1][1]);
    compare(name + " backward-weights", results[0][2], results[1][2]);
  }
}

TEST_CASE("bf16 leaves the other ops in fp32: activations match ref to 1e-6", "[bf16][act]") {
  Backend& bb = bf16();
  Pcg32 rng(3, 3);
  Host x = random_host(rng, 1000);
  Tensor a = up(bb, Shape{1000}, x), ya = bb.empty(Shape{1000});
  Tensor r = up(ref(), Shape{1000}, x), yr = ref().empty(Shape{1000});
  bb.act_forward(ActType::tanh, a, ya);
  ref().act_forward(ActType::tanh, r, yr);
  Host got = down(bb, ya), want = down(ref(), yr);
  double max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(std::isfinite(got[i]));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  CHECK(max_diff <= 1e-6);
}
