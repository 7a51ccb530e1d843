// The registry and the network builder: shape inference and parameter counts of the
// shipped configs (checked against the layer formulas), the errors a user gets for an
// unknown type or a shape that doesn't fit, the memory check, and the plan's reordering of
// an activation and a max pooling.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"
#include "nn/network.h"
#include "nn/registry.h"
#include "test_util.h"
#include "usage_error.h"

using namespace mnistctl;

namespace {
std::string error_of(const std::string& yaml) {
  return test::usage_error_from(
      [&] {
        Config c = load_config_text(yaml, "net.yaml");
        Network n(c.network);
      },
      "building:\n" + yaml);
}
int64_t conv_params(int64_t k, int64_t c, int64_t kh, int64_t kw) { return k * c * kh * kw + k; }
int64_t fc_params(int64_t out, int64_t in) { return out * in + out; }

// The same random parameters, uniform in [-r, r], on two bindings of one network spec.
void same_params(Pcg32& rng, float r, Network& a, Backend& ba, Network& b, Backend& bb) {
  std::vector<Param*> pa = a.params(), pb = b.params();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    std::vector<float> v(static_cast<size_t>(pa[i]->shape.numel()));
    for (float& x : v) x = rng.uniform(-r, r);
    ba.upload(pa[i]->value, v.data());
    bb.upload(pb[i]->value, v.data());
  }
}

// The largest |want - got|, the largest |want| (at least 1e-6), and the elements where either
// side is NaN or infinite (kept out of the maxima, and a failure for every caller).
struct Gap {
  double abs = 0, ref = 1e-6;
  size_t nonfinite = 0;
};
Gap gap(const std::vector<float>& want, const std::vector<float>& got) {
  REQUIRE(want.size() == got.size());
  Gap g;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(want[i]) || !std::isfinite(got[i])) {
      ++g.nonfinite;
      continue;
    }
    g.abs = std::max(g.abs, std::fabs(static_cast<double>(want[i]) - got[i]));
    g.ref = std::max(g.ref, std::fabs(static_cast<double>(want[i])));
  }
  return g;
}
}  // namespace

TEST_CASE("the shipped LeNet infers the tutorial's shapes and parameter count") {
  Config c = load_config_file(test::config_file("lenet.yaml"));
  Network net(c.network);
  const auto& L = net.layers();
  REQUIRE(L.size() == 11);
  CHECK(L[0]->out_shape() == Shape{20, 24, 24});
  CHECK(L[2]->out_shape() == Shape{20, 12, 12});
  CHECK(L[3]->out_shape() == Shape{50, 8, 8});
  CHECK(L[5]->out_shape() == Shape{50, 4, 4});
  CHECK(L[6]->out_shape() == Shape{800});
  CHECK(net.output_shape() == Shape{10});
  CHECK(net.param_count() ==
        conv_params(20, 1, 5, 5) + conv_params(50, 20, 5, 5) + fc_params(500, 800) + fc_params(10, 500));
  CHECK(net.has_loss());
  std::string s = net.summary(100);
  CHECK(s.find("conv2") != std::string::npos);
  CHECK(s.find("50x4x4") != std::string::npos);
  CHECK(s.find("total parameters: " + std::to_string(net.param_count())) != std::string::npos);
}

TEST_CASE("the shipped MLP infers 784-128-64-10") {
  Config c = load_config_file(test::config_file("mlp.yaml"));
  Network net(c.network);
  CHECK(net.param_count() == fc_params(128, 784) + fc_params(64, 128) + fc_params(10, 64));
  CHECK(net.output_shape() == Shape{10});
}

TEST_CASE("an unknown layer type lists the known ones at the type field") {
  std::string e = error_of("network:\n  layers:\n    - {type: convolutoin, kernel: 5, num_filter: 2}\n");
  CHECK(e.find("net.yaml:3:") == 0);
  CHECK(e.find("unknown layer type 'convolutoin'") != std::string::npos);
  for (const auto& t : LayerRegistry::types()) CHECK(e.find(t) != std::string::npos);
  // A near miss gets a "did you mean", as keys and commands do.
  CHECK(e.find("did you mean 'convolution'?") != std::string::npos);
  CHECK(error_of("network:\n  layers:\n    - {type: softmax}\n").find("did you mean 'softmax_output'?") !=
        std::string::npos);
  CHECK(error_of("network:\n  layers:\n    - {type: lstm}\n").find("did you mean") == std::string::npos);
}

TEST_CASE("a kernel larger than its input is refused with the layer's location") {
  std::string e = error_of(
      "network:\n  input: [1, 3, 3]\n  layers:\n    - {type: convolution, name: c1, kernel: [5, 5], num_filter: 2}\n");
  CHECK(e.find("net.yaml:4:") == 0);
  CHECK(e.find("5x5 kernel does not fit the 3x3 input") != std::string::npos);
}

TEST_CASE("layer fields are validated: unknown keys and missing or out-of-range values") {
  CHECK(error_of("network: {layers: [{type: fully_connected, num_hiden: 3}]}").find("num_hiden") !=
        std::string::npos);
  CHECK(error_of("network: {layers: [{type: fully_connected}]}").find("num_hidden") != std::string::npos);
  CHECK(error_of("network: {layers: [{type: activation, act_type: swish}]}").find("swish") != std::string::npos);
  CHECK(error_of("network: {layers: [{type: dropout, p: 1.5}]}").find("p: expected a number from 0 to 0.999, got '1.5'") !=
        std::string::npos);
  CHECK(error_of("network: {layers: [{type: softmax_output}, {type: flatten}]}").find("must be the last layer") !=
        std::string::npos);
  CHECK(error_of("network: {input: [1, 28, 28], layers: [{type: softmax_output}]}").find("flat input") !=
        std::string::npos);
}

TEST_CASE("a network that cannot fit in memory is refused before allocating") {
  Config c = load_config_text(
      "network: {input: [1, 4096, 4096], layers: [{type: convolution, kernel: 1, num_filter: 65536}]}", "big.yaml");
  Network net(c.network);  // shape inference allocates nothing
  CHECK(net.memory_bytes(100) > 1e14);
  try {
    net.check_fits(100, 24e9, "big.yaml");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("GiB") != std::string::npos);
  }
  // Inference holds no gradients or optimizer state: less, and refused against its own budget.
  const double infer = net.memory_bytes(100, Network::Use::inference);
  CHECK(infer > 1e14);
  CHECK(infer < net.memory_bytes(100));
  try {
    net.check_fits(100, 6e9, "big.yaml", Network::Use::inference);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("inference budget") != std::string::npos);
  }
}

// The plan (network.h): an activation followed by a max pooling runs as pool -> activation.
// Against the layers' ops called one by one in the config's order (activation, then pool),
// on both host backends: the output, and the gradient below the pair, seen through an
// identity 1x1 convolution in front (its weight gradient is sum dx * x, its bias gradient
// sum dx).
TEST_CASE("an activation before a max pooling runs after it, with the same output and gradient") {
  for (const char* ctx : {"ref", "cpu"}) {
    for (const char* act : {"tanh", "relu", "sigmoid"}) {
      INFO(ctx << " " << act);
      Config c = load_config_text(
          fmt::format("network: {{input: [3, 6, 6], layers: [{{type: convolution, kernel: 1, num_filter: 3}}, "
                      "{{type: activation, act_type: {}}}, {{type: pooling, pool_type: max, kernel: 2, stride: 2}}]}}",
                      act),
          "plan.yaml");
      Network net(c.network);
      auto be = make_backend(ctx);
      const int64_t n = 4, C = 3, H = 6, W = 6;
      net.bind(*be, n);
      const float eye[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, zero[3] = {0, 0, 0};
      std::vector<Param*> ps = net.params();
      REQUIRE(ps.size() == 2);
      be->upload(ps[0]->value, eye);
      be->upload(ps[1]->value, zero);
      Pcg32 rng(99);
      std::vector<float> xv(static_cast<size_t>(n * C * H * W)), dyv(static_cast<size_t>(n * C * 3 * 3));
      for (float& v : xv) v = rng.uniform(-2.0f, 2.0f);
      for (float& v : dyv) v = rng.uniform(-1.0f, 1.0f);
      Tensor x = be->empty(Shape{n, C, H, W}), dy = be->empty(Shape{n, C, 3, 3});
      be->upload(x, xv.data());
      be->upload(dy, dyv.data());
      Pass pass;
      std::vector<float> got(dyv.size()), gw(9), gb(3);
      be->download(net.forward(x, pass), got.data());
      net.backward(&dy);
      be->download(ps[0]->grad, gw.data());
      be->download(ps[1]->grad, gb.data());

      // The same two layers as ops, in the config's order, on x (the identity's output).
      const std::string an = act;
      const ActType a = an == "tanh" ? ActType::tanh : an == "relu" ? ActType::relu : ActType::sigmoid;
      PoolDesc d;
      d.type = PoolType::max;
      d.n = n, d.c = C, d.h = H, d.w = W, d.kh = 2, d.kw = 2, d.sh = 2, d.sw = 2;
      Tensor ya = be->empty(x.shape), yp = be->empty(dy.shape), dya = be->empty(x.shape), dx = be->empty(x.shape);
      Buffer ws = be->pool_workspace(d);
      be->act_forward(a, x, ya);
      be->pool_forward(d, ya, yp, ws);
      be->pool_backward(d, ya, yp, dy, ws, dya);
      be->act_backward(a, x, ya, dya, dx);
      std::vector<float> want(dyv.size()), dxv(xv.size());
      be->download(yp, want.data());
      be->download(dx, dxv.data());
      double max_diff = 0, max_grad_diff = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        REQUIRE(std::isfinite(got[i]));
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i]) - want[i]));
      }
      const int64_t plane = H * W;
      for (int64_t k = 0; k < C; ++k) {
        double db = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t p = 0; p < plane; ++p) db += dxv[static_cast<size_t>((i * C + k) * plane + p)];
        REQUIRE(std::isfinite(gb[static_cast<size_t>(k)]));
        max_grad_diff = std::max(max_grad_diff, std::fabs(gb[static_cast<size_t>(k)] - db));
        for (int64_t ch = 0; ch < C; ++ch) {
          double dw = 0;
          for (int64_t i = 0; i < n; ++i)
            for (int64_t p = 0; p < plane; ++p)
              dw += static_cast<double>(dxv[static_cast<size_t>((i * C + k) * plane + p)]) *
                    xv[static_cast<size_t>((i * C + ch) * plane + p)];
          REQUIRE(std::isfinite(gw[static_cast<size_t>(k * C + ch)]));
          max_grad_diff = std::max(max_grad_diff, std::fabs(gw[static_cast<size_t>(k * C + ch)] - dw));
        }
      }
      std::printf("plan %-3s %-7s output max diff %.2e, gradient below the pair max diff %.2e\n", ctx, act,
                  max_diff, max_grad_diff);
      CHECK(max_diff <= 1e-6);
      CHECK(max_grad_diff <= 1e-4);
    }
  }
}

// The layout plan (network.h): on the CPU backend, which accepts nhwc and prefers it for its
// convolutions, LeNet's tensors are channels-last from the input (one channel: the same
// bytes) to pool2, which turns them back to the NCHW that flatten and fully connected read;
// on ref everything stays NCHW. The whole network then computes on the CPU what ref
// computes: the probabilities and every parameter gradient of one step.
TEST_CASE("the layout plan runs LeNet channels-last on the CPU and computes what ref computes") {
  Config c = load_config_file(test::config_file("lenet.yaml"));
  const int64_t n = 8;
  auto be_ref = make_backend("ref"), be_cpu = make_backend("cpu");
  Network ref(c.network), cpu(c.network);
  ref.bind(*be_ref, n);
  cpu.bind(*be_cpu, n);
  const auto& L = cpu.layers();
  REQUIRE(L.size() == 11);
  CHECK(cpu.input_layout() == Layout::nhwc);
  for (size_t i = 0; i < L.size(); ++i) {
    const bool nhwc = i <= 4;  // conv1, tanh1, pool1, conv2, tanh2; pool2 writes NCHW
    INFO("layer " << i << " " << L[i]->name());
    CHECK((cpu.output_layout(i) == Layout::nhwc) == nhwc);
    CHECK(ref.output_layout(i) == Layout::nchw);
  }
  CHECK(ref.input_layout() == Layout::nchw);

  Pcg32 rng(7);
  same_params(rng, 0.2f, ref, *be_ref, cpu, *be_cpu);
  std::vector<Param*> pc = cpu.params();
  std::vector<float> xv(static_cast<size_t>(n * 28 * 28)), lv(static_cast<size_t>(n));
  for (float& x : xv) x = rng.uniform(0.0f, 1.0f);
  for (float& l : lv) l = static_cast<float>(rng.below(10));
  auto step = [&](Backend& be, Network& net, std::vector<std::vector<float>>& out) {
    Tensor x = be.empty(Shape{n, 1, 28, 28}), labels = be.empty(Shape{n});
    be.upload(x, xv.data());
    be.upload(labels, lv.data());
    Pass pass;
    pass.train = true;
    pass.labels = &labels;
    const Tensor& probs = net.forward(x, pass);
    out.emplace_back(static_cast<size_t>(probs.numel()));
    be.download(probs, out.back().data());
    net.backward();
    for (Param* p : net.params()) {
      out.emplace_back(static_cast<size_t>(p->shape.numel()));
      be.download(p->grad, out.back().data());
    }
  };
  std::vector<std::vector<float>> want, got;
  step(*be_ref, ref, want);
  step(*be_cpu, cpu, got);
  REQUIRE(want.size() == got.size());
  for (size_t t = 0; t < want.size(); ++t) {
    const Gap g = gap(want[t], got[t]);
    const std::string what = t == 0 ? "probabilities" : pc[t - 1]->name + " gradient";
    std::printf("layout plan: lenet cpu vs ref %-22s max abs %.2e, max rel %.2e\n", what.c_str(), g.abs,
                g.abs / g.ref);
    INFO(what << ": non-finite elements " << g.nonfinite);
    CHECK(g.nonfinite == 0);
    CHECK(g.abs / g.ref < 1e-4);
  }
}

// Where the next layer reads NCHW (dropout, flatten) or the network ends, a convolution
// writes NCHW even on the CPU; a pooling after an NCHW producer writes NCHW; a multi-channel
// input stays NCHW. The mixed network still computes what ref computes.
TEST_CASE("the layout plan gives NCHW wherever a layer or the caller reads it") {
  Config c = load_config_text(
      "network: {input: [3, 12, 12], layers: ["
      "{type: pooling, kernel: 2, stride: 2}, {type: convolution, kernel: 3, num_filter: 4},"
      "{type: dropout, p: 0.5}, {type: convolution, kernel: 1, num_filter: 4},"
      "{type: activation, act_type: relu}, {type: convolution, kernel: 1, num_filter: 2},"
      "{type: flatten}, {type: fully_connected, num_hidden: 3}]}",
      "plan.yaml");
  const int64_t n = 2;
  auto be_ref = make_backend("ref"), be_cpu = make_backend("cpu");
  Network ref(c.network), cpu(c.network);
  ref.bind(*be_ref, n);
  cpu.bind(*be_cpu, n);
  const std::vector<Layout> want = {Layout::nchw, Layout::nchw, Layout::nchw, Layout::nhwc,
                                    Layout::nhwc, Layout::nchw, Layout::nchw, Layout::nchw};
  REQUIRE(cpu.layers().size() == want.size());
  CHECK(cpu.input_layout() == Layout::nchw);
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("layer " << i << " " << cpu.layers()[i]->name());
    CHECK(cpu.output_layout(i) == want[i]);
  }
  Pcg32 rng(8);
  same_params(rng, 0.5f, ref, *be_ref, cpu, *be_cpu);
  std::vector<float> xv(static_cast<size_t>(n * 3 * 12 * 12));
  for (float& x : xv) x = rng.uniform(-1.0f, 1.0f);
  auto run = [&](Backend& be, Network& net) {
    Tensor x = be.empty(Shape{n, 3, 12, 12});
    be.upload(x, xv.data());
    Pass pass;
    pass.train = true;  // dropout masks are the same on every backend
    pass.seed = 5;
    const Tensor& y = net.forward(x, pass);
    std::vector<float> out(static_cast<size_t>(y.numel()));
    be.download(y, out.data());
    return out;
  };
  const Gap g = gap(run(*be_ref, ref), run(*be_cpu, cpu));
  std::printf("layout plan: mixed network cpu vs ref output max abs %.2e\n", g.abs);
  INFO("non-finite elements " << g.nonfinite);
  CHECK(g.nonfinite == 0);
  CHECK(g.abs < 1e-5);
}
