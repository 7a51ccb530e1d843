// bench_ops: times one training step's op sequence of the tutorial's LeNet and MLP on
// each named backend and prints, per op, the time per call and the images/s that op alone
// would allow, then the whole step's images/s. A tuning tool (not a ctest test): the op
// sequence is what the layers call (gather, forward, softmax, backward-data except for the
// first layer, backward-weights, sgd with momentum), on random data, so the numbers are the
// backend's ceiling for a training epoch.
//
//   bench_ops [--iters N] [--threads T] [--batch B] [ctx ...]     (default: ref cpu)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/rng.h"

using namespace mnistctl;

namespace {

struct Step {
  std::vector<std::pair<std::string, std::function<void()>>> ops;
  void add(const std::string& name, std::function<void()> f) { ops.emplace_back(name, std::move(f)); }
};

Tensor random_tensor(Backend& b, const Shape& s, Pcg32& rng, float scale) {
  std::vector<float> h(static_cast<size_t>(s.numel()));
  for (auto& v : h) v = rng.uniform(-scale, scale);
  Tensor t = b.empty(s);
  b.upload(t, h.data());
  return t;
}

// The dataset in backend memory, as the trainer holds it: 1000 random 28x28 byte images.
struct Data {
  Buffer images, labels, order;
  int64_t count;
  Data(Backend& b, Pcg32& rng, int64_t batch) : count(std::max<int64_t>(1000, batch)) {
    std::vector<uint8_t> img(count * 784), lab(count);
    for (auto& v : img) v = static_cast<uint8_t>(rng.below(256));
    for (auto& v : lab) v = static_cast<uint8_t>(rng.below(10));
    std::vector<int32_t> ord(count);
    for (int64_t i = 0; i < count; ++i) ord[i] = static_cast<int32_t>(i);
    rng.shuffle(ord);
    images = b.alloc_bytes(img.size());
    labels = b.alloc_bytes(lab.size());
    order = b.alloc_bytes(ord.size() * 4);
    b.upload_bytes(images, img.data(), img.size());
    b.upload_bytes(labels, lab.data(), lab.size());
    b.upload_bytes(order, ord.data(), ord.size() * 4);
  }
};

// A parameter with its gradient and momentum.
struct Param {
  Tensor w, g, mom;
  Param(Backend& b, const Shape& s, Pcg32& rng, float scale)
      : w(random_tensor(b, s, rng, scale)), g(b.zeros(s)), mom(b.zeros(s)) {}
};

void add_sgd(Step& st, Backend& b, std::vector<Param*> params) {
  st.add("sgd (all params)", [&b, params] {
    for (Param* p : params) b.sgd_update(p->w, p->g, &p->mom, 0.01f, 0.9f, 1e-4f);
  });
}

// Everything one LeNet step touches, kept alive for the timing loop.
struct LeNet {
  ConvDesc c1, c2;
  PoolDesc p1, p2;
  FcDesc f1, f2;
  Param w1, b1, w2, b2, w3, b3, w4, b4;
  Tensor x, lab, y1, a1, q1, y2, a2, q2, y3, a3, y4, probs, metrics, d4, d3, da3, dq2, da2, dy2,
      dq1, da1;
  Buffer ws1, ws2;

  static ConvDesc conv(int64_t n, int64_t c, int64_t h, int64_t k) {
    ConvDesc d;
    d.n = n, d.c = c, d.h = h, d.w = h, d.k = k, d.kh = 5, d.kw = 5;
    return d;
  }
  static PoolDesc pool(int64_t n, int64_t c, int64_t h) {
    PoolDesc d;
    d.n = n, d.c = c, d.h = h, d.w = h;
    return d;
  }
  static FcDesc fc(int64_t n, int64_t in, int64_t out) {
    FcDesc d;
    d.n = n, d.in = in, d.out = out;
    return d;
  }

  LeNet(Backend& b, int64_t n, Pcg32& rng)
      : c1(conv(n, 1, 28, 20)), c2(conv(n, 20, 12, 50)), p1(pool(n, 20, 24)), p2(pool(n, 50, 8)),
        f1(fc(n, 800, 500)), f2(fc(n, 500, 10)),
        w1(b, {20, 1, 5, 5}, rng, 0.2f), b1(b, {20}, rng, 0.1f),
        w2(b, {50, 20, 5, 5}, rng, 0.05f), b2(b, {50}, rng, 0.1f),
        w3(b, {500, 800}, rng, 0.03f), b3(b, {500}, rng, 0.1f),
        w4(b, {10, 500}, rng, 0.05f), b4(b, {10}, rng, 0.1f) {
    x = b.empty({n, 1, 28, 28});
    lab = b.empty({n});
    y1 = b.empty({n, 20, 24, 24}), a1 = b.empty(y1.shape), q1 = b.empty({n, 20, 12, 12});
    y2 = b.empty({n, 50, 8, 8}), a2 = b.empty(y2.shape), q2 = b.empty({n, 50, 4, 4});
    y3 = b.empty({n, 500}), a3 = b.empty(y3.shape), y4 = b.empty({n, 10});
    probs = b.empty({n, 10}), metrics = b.zeros({kMetricSlots});
    d4 = b.empty({n, 10}), da3 = b.empty({n, 500}), d3 = b.empty({n, 500});
    dq2 = b.empty(q2.shape), da2 = b.empty(a2.shape), dy2 = b.empty(y2.shape);
    dq1 = b.empty(q1.shape), da1 = b.empty(a1.shape);
    ws1 = b.pool_workspace(p1);
    ws2 = b.pool_workspace(p2);
  }

  void build(Step& st, Backend& b, Data& data) {
    const int64_t n = c1.n;
    st.add("gather_batch", [&, n] { b.gather_batch(data.images, data.labels, 784, data.order, 0, n, x, lab); });
    st.add("conv1 fwd", [&] { b.conv_forward(c1, x, w1.w, &b1.w, y1); });
    st.add("tanh1 fwd", [&] { b.act_forward(ActType::tanh, y1, a1); });
    st.add("pool1 fwd", [&] { b.pool_forward(p1, a1, q1, ws1); });
    st.add("conv2 fwd", [&] { b.conv_forward(c2, q1, w2.w, &b2.w, y2); });
    st.add("tanh2 fwd", [&] { b.act_forward(ActType::tanh, y2, a2); });
    st.add("pool2 fwd", [&] { b.pool_forward(p2, a2, q2, ws2); });
    st.add("fc1 fwd", [&, n] { b.fc_forward(f1, q2.view({n, 800}), w3.w, &b3.w, y3); });
    st.add("tanh3 fwd", [&] { b.act_forward(ActType::tanh, y3, a3); });
    st.add("fc2 fwd", [&] { b.fc_forward(f2, a3, w4.w, &b4.w, y4); });
    st.add("softmax_xent fwd", [&] { b.softmax_xent_forward(y4, lab, probs, &metrics); });
    st.add("softmax_xent bwd", [&, n] { b.softmax_xent_backward(probs, lab, 1.0f / n, d4); });
    st.add("fc2 bwd weights", [&] { b.fc_backward_weights(f2, a3, d4, w4.g, &b4.g); });
    st.add("fc2 bwd data", [&] { b.fc_backward_data(f2, d4, w4.w, da3); });
    st.add("tanh3 bwd", [&] { b.act_backward(ActType::tanh, y3, a3, da3, d3); });
    st.add("fc1 bwd weights", [&, n] { b.fc_backward_weights(f1, q2.view({n, 800}), d3, w3.g, &b3.g); });
    st.add("fc1 bwd data", [&, n] {
      Tensor v = dq2.view({n, 800});
      b.fc_backward_data(f1, d3, w3.w, v);
    });
    st.add("pool2 bwd", [&] { b.pool_backward(p2, a2, q2, dq2, ws2, da2); });
    st.add("tanh2 bwd", [&] { b.act_backward(ActType::tanh, y2, a2, da2, dy2); });
    st.add("conv2 bwd weights", [&] { b.conv_backward_weights(c2, q1, dy2, w2.g, &b2.g); });
    st.add("conv2 bwd data", [&] { b.conv_backward_data(c2, dy2, w2.w, dq1); });
    st.add("pool1 bwd", [&] { b.pool_backward(p1, a1, q1, dq1, ws1, da1); });
    st.add("tanh1 bwd", [&] { b.act_backward(ActType::tanh, y1, a1, da1, da1); });
    st.add("conv1 bwd weights", [&] { b.conv_backward_weights(c1, x, da1, w1.g, &b1.g); });
    add_sgd(st, b, {&w1, &b1, &w2, &b2, &w3, &b3, &w4, &b4});
  }
};

// The tutorial's MLP: 784-128-64-10 with relu.
struct Mlp {
  FcDesc f1, f2, f3;
  Param w1, b1, w2, b2, w3, b3;
  Tensor x, lab, y1, a1, y2, a2, y3, probs, metrics, d3, da2, d2, da1, d1;

  Mlp(Backend& b, int64_t n, Pcg32& rng)
      : f1(LeNet::fc(n, 784, 128)), f2(LeNet::fc(n, 128, 64)), f3(LeNet::fc(n, 64, 10)),
        w1(b, {128, 784}, rng, 0.05f), b1(b, {128}, rng, 0.1f),
        w2(b, {64, 128}, rng, 0.1f), b2(b, {64}, rng, 0.1f),
        w3(b, {10, 64}, rng, 0.1f), b3(b, {10}, rng, 0.1f) {
    x = b.empty({n, 784}), lab = b.empty({n});
    y1 = b.empty({n, 128}), a1 = b.empty(y1.shape), y2 = b.empty({n, 64}), a2 = b.empty(y2.shape);
    y3 = b.empty({n, 10}), probs = b.empty({n, 10}), metrics = b.zeros({kMetricSlots});
    d3 = b.empty({n, 10}), da2 = b.empty({n, 64}), d2 = b.empty({n, 64});
    da1 = b.empty({n, 128}), d1 = b.empty({n, 128});
  }

  void build(Step& st, Backend& b, Data& data) {
    const int64_t n = f1.n;
    st.add("gather_batch", [&, n] { b.gather_batch(data.images, data.labels, 784, data.order, 0, n, x, lab); });
    st.add("fc1 fwd", [&] { b.fc_forward(f1, x, w1.w, &b1.w, y1); });
    st.add("relu1 fwd", [&] { b.act_forward(ActType::relu, y1, a1); });
    st.add("fc2 fwd", [&] { b.fc_forward(f2, a1, w2.w, &b2.w, y2); });
    st.add("relu2 fwd", [&] { b.act_forward(ActType::relu, y2, a2); });
    st.add("fc3 fwd", [&] { b.fc_forward(f3, a2, w3.w, &b3.w, y3); });
    st.add("softmax_xent fwd", [&] { b.softmax_xent_forward(y3, lab, probs, &metrics); });
    st.add("softmax_xent bwd", [&, n] { b.softmax_xent_backward(probs, lab, 1.0f / n, d3); });
    st.add("fc3 bwd weights", [&] { b.fc_backward_weights(f3, a2, d3, w3.g, &b3.g); });
    st.add("fc3 bwd data", [&] { b.fc_backward_data(f3, d3, w3.w, da2); });
    st.add("relu2 bwd", [&] { b.act_backward(ActType::relu, y2, a2, da2, d2); });
    st.add("fc2 bwd weights", [&] { b.fc_backward_weights(f2, a1, d2, w2.g, &b2.g); });
    st.add("fc2 bwd data", [&] { b.fc_backward_data(f2, d2, w2.w, da1); });
    st.add("relu1 bwd", [&] { b.act_backward(ActType::relu, y1, a1, da1, d1); });
    st.add("fc1 bwd weights", [&] { b.fc_backward_weights(f1, x, d1, w1.g, &b1.g); });
    add_sgd(st, b, {&w1, &b1, &w2, &b2, &w3, &b3});
  }
};

using Clock = std::chrono::steady_clock;

// Per op: the median over the steps (robust against a busy machine); the step: the mean
// wall time and the sum of the op medians.
void time_step(const std::string& model, Backend& b, Step& st, int64_t batch, int iters) {
  for (auto& [name, f] : st.ops) f();  // warm-up: makes and caches every primitive
  b.synchronize();
  std::vector<std::vector<double>> secs(st.ops.size());
  auto t0 = Clock::now();
  for (int it = 0; it < iters; ++it)
    for (size_t i = 0; i < st.ops.size(); ++i) {
      auto a = Clock::now();
      st.ops[i].second();
      b.synchronize();
      secs[i].push_back(std::chrono::duration<double>(Clock::now() - a).count());
    }
  double wall = std::chrono::duration<double>(Clock::now() - t0).count() / iters;
  std::vector<double> med(st.ops.size());
  double sum = 0;
  for (size_t i = 0; i < st.ops.size(); ++i) {
    std::sort(secs[i].begin(), secs[i].end());
    med[i] = secs[i][secs[i].size() / 2];
    sum += med[i];
  }
  std::printf("\n%s on %s, batch %lld, %d steps\n", model.c_str(), b.name().c_str(),
              static_cast<long long>(batch), iters);
  std::printf("  %-20s %10s %14s %7s\n", "op", "ms (median)", "images/s", "share");
  for (size_t i = 0; i < st.ops.size(); ++i)
    std::printf("  %-20s %10.3f %14.0f %6.1f%%\n", st.ops[i].first.c_str(), med[i] * 1e3,
                batch / med[i], 100.0 * med[i] / sum);
  std::printf("  %-20s %10.3f %14.0f\n", "TOTAL (sum of medians)", sum * 1e3, batch / sum);
  std::printf("  %-20s %10.3f %14.0f\n", "TOTAL (mean wall)", wall * 1e3, batch / wall);
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 0, threads = 0;
  int64_t batch = 100;
  std::vector<std::string> ctxs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--iters" || a == "--threads" || a == "--batch") && i + 1 < argc) {
      int v = std::atoi(argv[++i]);
      if (v <= 0 && a != "--threads") {
        std::fprintf(stderr, "bench_ops: %s needs a positive number\n", a.c_str());
        return 2;
      }
      if (a == "--iters") iters = v;
      else if (a == "--threads") threads = v;
      else batch = v;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: bench_ops [--iters N] [--threads T] [--batch B] [ctx ...]  (default: ref cpu)\n");
      return 0;
    } else {
      ctxs.push_back(a);
    }
  }
  if (ctxs.empty()) ctxs = {"ref", "cpu"};
  try {
    for (const auto& ctx : ctxs) {
      BackendOptions opts;
      opts.threads = threads;
      auto b = make_backend(ctx, opts);
      int n_iters = iters > 0 ? iters : (ctx == "ref" ? 2 : 50);
      Pcg32 rng(1);
      Data data(*b, rng, batch);
      {
        LeNet net(*b, batch, rng);
        Step st;
        net.build(st, *b, data);
        time_step("LeNet", *b, st, batch, n_iters);
      }
      {
        Mlp net(*b, batch, rng);
        Step st;
        net.build(st, *b, data);
        time_step("MLP", *b, st, batch, ctx == "ref" ? n_iters : n_iters * 10);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_ops: %s\n", e.what());
    return e.code();
  }
  return 0;
}
