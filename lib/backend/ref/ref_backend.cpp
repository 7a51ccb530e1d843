// The reference backend (--ctx ref): every op of backend.h as the plainest loops that
// follow its comment, llm.c style. It is the yardstick the oneDNN and CUDA backends are
// tested against, so it favours being obviously right over being fast: sums are
// accumulated in double, convolution backward passes scatter into a double buffer instead
// of inverting the index arithmetic, and max pooling recomputes its argmax in the
// backward pass rather than keeping a workspace. Memory and gather_batch are not here:
// they come from HostBackend (host/host_backend.h), shared with the cpu backend and run
// single-threaded for this one; the argument checks are backend/op_checks.h, shared by all.
#include "backend/ref/ref_backend.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/host/host_backend.h"
#include "backend/op_checks.h"
#include "core/error.h"
#include "core/rng.h"

namespace mnistctl {
namespace {

// Label of row i, or -1 when it is not a valid class index (never matches, no one-hot).
int64_t label_at(const Tensor& labels, int64_t i, int64_t classes) {
  float l = labels.data[i];
  if (!(l >= 0.0f) || l >= static_cast<float>(classes)) return -1;
  return static_cast<int64_t>(l);
}

// Calls f(r, q, iy, ix) for each tap (r, q) of the kh x kw window whose output is (oy, ox)
// and whose input cell (iy, ix) lies inside the h x w input: taps on the zero padding are
// skipped. Row-major over the window, the order every sum below accumulates in. Desc is a
// ConvDesc or a PoolDesc (both have the window, stride, padding and input extent).
template <typename Desc, typename F>
void for_each_tap(const Desc& d, int64_t oy, int64_t ox, F f) {
  for (int64_t r = 0; r < d.kh; ++r) {
    int64_t iy = oy * d.sh - d.ph + r;
    if (iy < 0 || iy >= d.h) continue;
    for (int64_t q = 0; q < d.kw; ++q) {
      int64_t ix = ox * d.sw - d.pw + q;
      if (ix < 0 || ix >= d.w) continue;
      f(r, q, iy, ix);
    }
  }
}

class RefBackend final : public HostBackend {
 public:
  RefBackend() : HostBackend("ref", 1) {}  // one thread: the memory loops stay serial
  std::string name() const override { return "ref"; }

  // ---- fully connected ---------------------------------------------------------------
  void fc_forward(const FcDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                  Tensor& y) override {
    opcheck::fc_forward(d, x, w, b, y);
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t o = 0; o < d.out; ++o) {
        double s = b ? b->data[o] : 0.0;
        for (int64_t j = 0; j < d.in; ++j)
          s += static_cast<double>(x.data[i * d.in + j]) * w.data[o * d.in + j];
        y.data[i * d.out + o] = static_cast<float>(s);
      }
  }

  void fc_backward_data(const FcDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) override {
    opcheck::fc_backward_data(d, dy, w, dx);
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t j = 0; j < d.in; ++j) {
        double s = 0.0;
        for (int64_t o = 0; o < d.out; ++o)
          s += static_cast<double>(dy.data[i * d.out + o]) * w.data[o * d.in + j];
        dx.data[i * d.in + j] = static_cast<float>(s);
      }
  }

  void fc_backward_weights(const FcDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                           Tensor* db) override {
    opcheck::fc_backward_weights(d, x, dy, dw, db);
    for (int64_t o = 0; o < d.out; ++o) {
      for (int64_t j = 0; j < d.in; ++j) {
        double s = 0.0;
        for (int64_t i = 0; i < d.n; ++i)
          s += static_cast<double>(dy.data[i * d.out + o]) * x.data[i * d.in + j];
        dw.data[o * d.in + j] = static_cast<float>(s);
      }
      if (db) {
        double s = 0.0;
        for (int64_t i = 0; i < d.n; ++i) s += dy.data[i * d.out + o];
        db->data[o] = static_cast<float>(s);
      }
    }
  }

  // ---- convolution: y[n,k,oy,ox] = b[k] + sum_{c,r,s} x[n,c,oy*sh-ph+r,ox*sw-pw+s] w[k,c,r,s]
  void conv_forward(const ConvDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                    Tensor& y) override {
    opcheck::conv_args("conv_forward", d, x, w, y);
    if (b) opcheck::numel("conv_forward", "b", *b, d.k);
    const int64_t OH = d.oh(), OW = d.ow();
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t k = 0; k < d.k; ++k)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            double s = b ? b->data[k] : 0.0;
            for (int64_t c = 0; c < d.c; ++c)
              for_each_tap(d, oy, ox, [&](int64_t r, int64_t q, int64_t iy, int64_t ix) {
                s += static_cast<double>(x.data[((n * d.c + c) * d.h + iy) * d.w + ix]) *
                     w.data[((k * d.c + c) * d.kh + r) * d.kw + q];
              });
            y.data[((n * d.k + k) * OH + oy) * OW + ox] = static_cast<float>(s);
          }
  }

  // The transpose of the forward loop: every (output, tap) pair scatters into dx.
  void conv_backward_data(const ConvDesc& d, const Tensor& dy, const Tensor& w,
                          Tensor& dx) override {
    opcheck::conv_args("conv_backward_data", d, dx, w, dy);
    const int64_t OH = d.oh(), OW = d.ow();
    std::vector<double> acc(static_cast<size_t>(dx.numel()), 0.0);
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t k = 0; k < d.k; ++k)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            double g = dy.data[((n * d.k + k) * OH + oy) * OW + ox];
            for (int64_t c = 0; c < d.c; ++c)
              for_each_tap(d, oy, ox, [&](int64_t r, int64_t q, int64_t iy, int64_t ix) {
                acc[static_cast<size_t>(((n * d.c + c) * d.h + iy) * d.w + ix)] +=
                    g * w.data[((k * d.c + c) * d.kh + r) * d.kw + q];
              });
          }
    for (size_t i = 0; i < acc.size(); ++i) dx.data[i] = static_cast<float>(acc[i]);
  }

  // Not for_each_tap: here the tap (r, q) is fixed and the sum runs over the outputs that
  // see it, so the bounds tests sit on the output loops; written out on purpose.
  void conv_backward_weights(const ConvDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                             Tensor* db) override {
    opcheck::conv_args("conv_backward_weights", d, x, dw, dy);
    if (db) opcheck::numel("conv_backward_weights", "db", *db, d.k);
    const int64_t OH = d.oh(), OW = d.ow();
    for (int64_t k = 0; k < d.k; ++k) {
      for (int64_t c = 0; c < d.c; ++c)
        for (int64_t r = 0; r < d.kh; ++r)
          for (int64_t q = 0; q < d.kw; ++q) {
            double s = 0.0;
            for (int64_t n = 0; n < d.n; ++n)
              for (int64_t oy = 0; oy < OH; ++oy) {
                int64_t iy = oy * d.sh - d.ph + r;
                if (iy < 0 || iy >= d.h) continue;
                for (int64_t ox = 0; ox < OW; ++ox) {
                  int64_t ix = ox * d.sw - d.pw + q;
                  if (ix < 0 || ix >= d.w) continue;
                  s += static_cast<double>(dy.data[((n * d.k + k) * OH + oy) * OW + ox]) *
                       x.data[((n * d.c + c) * d.h + iy) * d.w + ix];
                }
              }
            dw.data[((k * d.c + c) * d.kh + r) * d.kw + q] = static_cast<float>(s);
          }
      if (db) {
        double s = 0.0;
        for (int64_t n = 0; n < d.n; ++n)
          for (int64_t i = 0; i < OH * OW; ++i) s += dy.data[(n * d.k + k) * OH * OW + i];
        db->data[k] = static_cast<float>(s);
      }
    }
  }

  // ---- pooling -----------------------------------------------------------------------
  // Max: over the window's cells inside the input (padding never wins). Avg: the sum of the
  // cells inside divided by the full window kh*kw (MXNet's count_include_pad).
  Buffer pool_workspace(const PoolDesc&) override { return Buffer{}; }

  // Index (within the image plane) of the first maximum of window (oy, ox).
  static int64_t argmax(const PoolDesc& d, const float* plane, int64_t oy, int64_t ox) {
    int64_t best = -1;
    for_each_tap(d, oy, ox, [&](int64_t, int64_t, int64_t iy, int64_t ix) {
      int64_t i = iy * d.w + ix;
      if (best < 0 || plane[i] > plane[best]) best = i;
    });
    return best;  // >= 0: opcheck::pool guarantees every window touches the input
  }

  void pool_forward(const PoolDesc& d, const Tensor& x, Tensor& y, Buffer&) override {
    opcheck::pool_args("pool_forward", d, x, y);
    const int64_t OH = d.oh(), OW = d.ow();
    for (int64_t p = 0; p < d.n * d.c; ++p) {
      const float* plane = x.data + p * d.h * d.w;
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          float out;
          if (d.type == PoolType::max) {
            out = plane[argmax(d, plane, oy, ox)];
          } else {
            double s = 0.0;
            for_each_tap(d, oy, ox, [&](int64_t, int64_t, int64_t iy, int64_t ix) {
              s += plane[iy * d.w + ix];
            });
            out = static_cast<float>(s / static_cast<double>(d.kh * d.kw));
          }
          y.data[(p * OH + oy) * OW + ox] = out;
        }
    }
  }

  void pool_backward(const PoolDesc& d, const Tensor& x, const Tensor& y, const Tensor& dy,
                     const Buffer&, Tensor& dx) override {
    opcheck::pool_args("pool_backward", d, x, y);
    opcheck::pool_args("pool_backward", d, dx, dy);
    const int64_t OH = d.oh(), OW = d.ow();
    std::vector<double> acc(static_cast<size_t>(dx.numel()), 0.0);
    for (int64_t p = 0; p < d.n * d.c; ++p) {
      const float* plane = x.data + p * d.h * d.w;
      double* out = acc.data() + p * d.h * d.w;
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double g = dy.data[(p * OH + oy) * OW + ox];
          if (d.type == PoolType::max) {
            out[argmax(d, plane, oy, ox)] += g;
            continue;
          }
          g /= static_cast<double>(d.kh * d.kw);
          for_each_tap(d, oy, ox, [&](int64_t, int64_t, int64_t iy, int64_t ix) {
            out[iy * d.w + ix] += g;
          });
        }
    }
    for (size_t i = 0; i < acc.size(); ++i) dx.data[i] = static_cast<float>(acc[i]);
  }

  // ---- elementwise ---------------------------------------------------------------------
  void act_forward(ActType a, const Tensor& x, Tensor& y) override {
    opcheck::same("act_forward", x, y);
    for (int64_t i = 0; i < x.numel(); ++i) {
      double v = x.data[i];
      double r = 0;
      switch (a) {
        case ActType::relu: r = v > 0 ? v : 0; break;
        case ActType::tanh: r = std::tanh(v); break;
        case ActType::sigmoid: r = 1.0 / (1.0 + std::exp(-v)); break;
        case ActType::softrelu: r = v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)); break;
      }
      y.data[i] = static_cast<float>(r);
    }
  }

  // From x alone (the definition), not y: the reference does not rely on the shortcut.
  void act_backward(ActType a, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor& dx) override {
    opcheck::same("act_backward", x, dy);
    opcheck::same("act_backward", x, dx);
    opcheck::same("act_backward", x, y);
    for (int64_t i = 0; i < x.numel(); ++i) {
      double v = x.data[i];
      double g = 0;
      switch (a) {
        case ActType::relu: g = v > 0 ? 1 : 0; break;
        case ActType::tanh: { double t = std::tanh(v); g = 1 - t * t; break; }
        case ActType::sigmoid:
        case ActType::softrelu: { double s = 1.0 / (1.0 + std::exp(-v)); g = a == ActType::sigmoid ? s * (1 - s) : s; break; }
      }
      dx.data[i] = static_cast<float>(dy.data[i] * g);
    }
  }

  void dropout_forward(float p, uint64_t seed, uint64_t counter, const Tensor& x, Tensor& y,
                       Tensor& mask) override {
    opcheck::same("dropout_forward", x, y);
    opcheck::same("dropout_forward", x, mask);
    // p >= 1 drops everything (no division by zero).
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (int64_t i = 0; i < x.numel(); ++i) {
      float m = hash_uniform(seed, counter + static_cast<uint64_t>(i)) >= p ? scale : 0.0f;
      mask.data[i] = m;
      y.data[i] = x.data[i] * m;
    }
  }

  void mul(const Tensor& a, const Tensor& b, Tensor& out) override {
    opcheck::same("mul", a, b);
    opcheck::same("mul", a, out);
    for (int64_t i = 0; i < a.numel(); ++i) out.data[i] = a.data[i] * b.data[i];
  }

  // ---- softmax + cross-entropy -------------------------------------------------------
  void softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                            Tensor* metrics) override {
    const auto [n, k, have_labels] = opcheck::softmax_xent_forward(logits, labels, probs, metrics);
    double loss = 0.0, correct = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float* z = logits.data + i * k;
      float* pr = probs.data + i * k;
      int64_t best = 0;
      for (int64_t j = 1; j < k; ++j)
        if (z[j] > z[best]) best = j;
      double sum = 0.0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(z[j]) - z[best]);
      for (int64_t j = 0; j < k; ++j)
        pr[j] = static_cast<float>(std::exp(static_cast<double>(z[j]) - z[best]) / sum);
      if (have_labels) {
        int64_t l = label_at(labels, i, k);
        double pl = l >= 0 ? pr[l] : 0.0;
        loss += -std::log(std::max(pl, 1e-12));
        if (l == best) correct += 1.0;
      }
    }
    if (metrics && have_labels) {
      metrics->data[kMetricLossSum] += static_cast<float>(loss);
      metrics->data[kMetricCorrect] += static_cast<float>(correct);
      metrics->data[kMetricCount] += static_cast<float>(n);
    }
  }

  void softmax_xent_backward(const Tensor& probs, const Tensor& labels, float scale,
                             Tensor& dlogits) override {
    const auto [n, k] = opcheck::softmax_xent_backward(probs, labels, dlogits);
    for (int64_t i = 0; i < n; ++i) {
      int64_t l = label_at(labels, i, k);
      for (int64_t j = 0; j < k; ++j)
        dlogits.data[i * k + j] = (probs.data[i * k + j] - (j == l ? 1.0f : 0.0f)) * scale;
    }
  }

  // ---- optimizers --------------------------------------------------------------------
  void sgd_update(Tensor& w, const Tensor& g, Tensor* mom, float lr, float momentum,
                  float wd) override {
    opcheck::sgd_update(w, g, mom, momentum);
    for (int64_t i = 0; i < w.numel(); ++i) {
      float gi = g.data[i] + wd * w.data[i];
      if (momentum != 0.0f) {
        mom->data[i] = momentum * mom->data[i] - lr * gi;
        w.data[i] += mom->data[i];
      } else {
        w.data[i] -= lr * gi;
      }
    }
  }

  void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, float lr, float beta1,
                   float beta2, float eps, float wd, int64_t step) override {
    opcheck::adam_update(w, g, m, v, step);
    const double c1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
    const double c2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
    for (int64_t i = 0; i < w.numel(); ++i) {
      double gi = static_cast<double>(g.data[i]) + static_cast<double>(wd) * w.data[i];
      double mi = beta1 * static_cast<double>(m.data[i]) + (1.0 - beta1) * gi;
      double vi = beta2 * static_cast<double>(v.data[i]) + (1.0 - beta2) * gi * gi;
      m.data[i] = static_cast<float>(mi);
      v.data[i] = static_cast<float>(vi);
      w.data[i] = static_cast<float>(w.data[i] - lr * (mi / c1) / (std::sqrt(vi / c2) + eps));
    }
  }
};

}  // namespace

std::unique_ptr<Backend> make_ref_backend() { return std::make_unique<RefBackend>(); }

}  // namespace mnistctl
