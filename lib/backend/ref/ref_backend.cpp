// The reference backend (--ctx ref): every op of backend.h as the plainest loops that
// follow its comment, llm.c style. It is the yardstick the oneDNN and CUDA backends are
// tested against, so it favours being obviously right over being fast: sums are
// accumulated in double, convolution backward passes scatter into a double buffer instead
// of inverting the index arithmetic, and max pooling recomputes its argmax in the
// backward pass rather than keeping a workspace.
#include "backend/ref/ref_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/ref/op_checks.h"
#include "core/error.h"
#include "core/rng.h"

namespace mnistctl {
namespace {

// 64-byte aligned host memory released through the shared_ptr's deleter.
std::shared_ptr<void> host_alloc(size_t bytes) {
  size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw RuntimeError("ref: out of memory allocating " + std::to_string(bytes) + " bytes");
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

// Label of row i, or -1 when it is not a valid class index (never matches, no one-hot).
int64_t label_at(const Tensor& labels, int64_t i, int64_t classes) {
  float l = labels.data[i];
  if (!(l >= 0.0f) || l >= static_cast<float>(classes)) return -1;
  return static_cast<int64_t>(l);
}

class RefBackend final : public Backend {
 public:
  std::string name() const override { return "ref"; }

  Tensor empty(const Shape& shape) override {
    Tensor t;
    t.shape = shape;
    for (int64_t d : shape.dims)
      if (d < 0) throw RuntimeError("ref: negative extent in shape " + shape.str());
    t.storage = host_alloc(static_cast<size_t>(shape.numel()) * sizeof(float));
    t.data = static_cast<float*>(t.storage.get());
    return t;
  }

  Buffer alloc_bytes(size_t bytes) override {
    Buffer b;
    b.bytes = bytes;
    b.storage = host_alloc(bytes);
    b.data = b.storage.get();
    return b;
  }

  void fill(Tensor& t, float value) override { std::fill(t.data, t.data + t.numel(), value); }

  void upload(Tensor& dst, const float* host) override {
    if (dst.numel()) std::memcpy(dst.data, host, static_cast<size_t>(dst.numel()) * sizeof(float));
  }
  void download(const Tensor& src, float* host) override {
    if (src.numel()) std::memcpy(host, src.data, static_cast<size_t>(src.numel()) * sizeof(float));
  }
  void upload_bytes(Buffer& dst, const void* host, size_t bytes) override {
    if (bytes > dst.bytes)
      throw RuntimeError("upload_bytes: " + std::to_string(bytes) + " bytes into a buffer of " +
                         std::to_string(dst.bytes));
    if (bytes) std::memcpy(dst.data, host, bytes);
  }
  void copy(const Tensor& src, Tensor& dst) override {
    opcheck::same("copy", src, dst);
    if (src.numel()) std::memmove(dst.data, src.data, static_cast<size_t>(src.numel()) * sizeof(float));
  }

  void gather_batch(const Buffer& images, const Buffer& labels_u8, int64_t sample_size,
                    const Buffer& order, int64_t first, int64_t n, Tensor& x,
                    Tensor& labels) override {
    opcheck::positive("gather_batch", sample_size, "sample_size");
    int64_t count = static_cast<int64_t>(images.bytes) / sample_size;
    int64_t order_len = static_cast<int64_t>(order.bytes / sizeof(int32_t));
    if (first < 0 || n < 0 || first + n > order_len)
      throw RuntimeError("gather_batch: rows " + std::to_string(first) + ".." +
                         std::to_string(first + n) + " outside the order list of " +
                         std::to_string(order_len));
    opcheck::numel("gather_batch", "x", x, n * sample_size);
    opcheck::numel("gather_batch", "labels", labels, n);
    const auto* img = static_cast<const uint8_t*>(images.data);
    const auto* lab = static_cast<const uint8_t*>(labels_u8.data);
    const auto* ord = static_cast<const int32_t*>(order.data);
    for (int64_t i = 0; i < n; ++i) {
      int64_t s = ord[first + i];
      if (s < 0 || s >= count || s >= static_cast<int64_t>(labels_u8.bytes))
        throw RuntimeError("gather_batch: sample index " + std::to_string(s) + " outside the " +
                           std::to_string(count) + " samples");
      for (int64_t j = 0; j < sample_size; ++j)
        x.data[i * sample_size + j] = static_cast<float>(img[s * sample_size + j]) / 255.0f;
      labels.data[i] = static_cast<float>(lab[s]);
    }
  }

  // ---- fully connected ---------------------------------------------------------------
  void fc_forward(const FcDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                  Tensor& y) override {
    opcheck::fc("fc_forward", d);
    opcheck::numel("fc_forward", "x", x, d.n * d.in);
    opcheck::numel("fc_forward", "w", w, d.out * d.in);
    if (b) opcheck::numel("fc_forward", "b", *b, d.out);
    opcheck::numel("fc_forward", "y", y, d.n * d.out);
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t o = 0; o < d.out; ++o) {
        double s = b ? b->data[o] : 0.0;
        for (int64_t j = 0; j < d.in; ++j)
          s += static_cast<double>(x.data[i * d.in + j]) * w.data[o * d.in + j];
        y.data[i * d.out + o] = static_cast<float>(s);
      }
  }

  void fc_backward_data(const FcDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) override {
    opcheck::fc("fc_backward_data", d);
    opcheck::numel("fc_backward_data", "dy", dy, d.n * d.out);
    opcheck::numel("fc_backward_data", "w", w, d.out * d.in);
    opcheck::numel("fc_backward_data", "dx", dx, d.n * d.in);
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
    opcheck::fc("fc_backward_weights", d);
    opcheck::numel("fc_backward_weights", "x", x, d.n * d.in);
    opcheck::numel("fc_backward_weights", "dy", dy, d.n * d.out);
    opcheck::numel("fc_backward_weights", "dw", dw, d.out * d.in);
    if (db) opcheck::numel("fc_backward_weights", "db", *db, d.out);
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
  void check_conv(const char* op, const ConvDesc& d, const Tensor& x, const Tensor& w,
                  const Tensor& y) {
    opcheck::conv(op, d);
    opcheck::numel(op, "x/dx", x, d.n * d.c * d.h * d.w);
    opcheck::numel(op, "w/dw", w, d.k * d.c * d.kh * d.kw);
    opcheck::numel(op, "y/dy", y, d.n * d.k * d.oh() * d.ow());
  }

  void conv_forward(const ConvDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                    Tensor& y) override {
    check_conv("conv_forward", d, x, w, y);
    if (b) opcheck::numel("conv_forward", "b", *b, d.k);
    const int64_t OH = d.oh(), OW = d.ow();
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t k = 0; k < d.k; ++k)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            double s = b ? b->data[k] : 0.0;
            for (int64_t c = 0; c < d.c; ++c)
              for (int64_t r = 0; r < d.kh; ++r) {
                int64_t iy = oy * d.sh - d.ph + r;
                if (iy < 0 || iy >= d.h) continue;
                for (int64_t q = 0; q < d.kw; ++q) {
                  int64_t ix = ox * d.sw - d.pw + q;
                  if (ix < 0 || ix >= d.w) continue;
                  s += static_cast<double>(x.data[((n * d.c + c) * d.h + iy) * d.w + ix]) *
                       w.data[((k * d.c + c) * d.kh + r) * d.kw + q];
                }
              }
            y.data[((n * d.k + k) * OH + oy) * OW + ox] = static_cast<float>(s);
          }
  }

  // The transpose of the forward loop: every (output, tap) pair scatters into dx.
  void conv_backward_data(const ConvDesc& d, const Tensor& dy, const Tensor& w,
                          Tensor& dx) override {
    check_conv("conv_backward_data", d, dx, w, dy);
    const int64_t OH = d.oh(), OW = d.ow();
    std::vector<double> acc(static_cast<size_t>(dx.numel()), 0.0);
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t k = 0; k < d.k; ++k)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            double g = dy.data[((n * d.k + k) * OH + oy) * OW + ox];
            for (int64_t c = 0; c < d.c; ++c)
              for (int64_t r = 0; r < d.kh; ++r) {
                int64_t iy = oy * d.sh - d.ph + r;
                if (iy < 0 || iy >= d.h) continue;
                for (int64_t q = 0; q < d.kw; ++q) {
                  int64_t ix = ox * d.sw - d.pw + q;
                  if (ix < 0 || ix >= d.w) continue;
                  acc[static_cast<size_t>(((n * d.c + c) * d.h + iy) * d.w + ix)] +=
                      g * w.data[((k * d.c + c) * d.kh + r) * d.kw + q];
                }
              }
          }
    for (size_t i = 0; i < acc.size(); ++i) dx.data[i] = static_cast<float>(acc[i]);
  }

  void conv_backward_weights(const ConvDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                             Tensor* db) override {
    check_conv("conv_backward_weights", d, x, dw, dy);
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

  void check_pool(const char* op, const PoolDesc& d, const Tensor& x, const Tensor& y) {
    opcheck::pool(op, d);
    opcheck::numel(op, "x/dx", x, d.n * d.c * d.h * d.w);
    opcheck::numel(op, "y/dy", y, d.n * d.c * d.oh() * d.ow());
  }

  // Index (within the image plane) of the first maximum of window (oy, ox).
  static int64_t argmax(const PoolDesc& d, const float* plane, int64_t oy, int64_t ox) {
    int64_t best = -1;
    for (int64_t r = 0; r < d.kh; ++r) {
      int64_t iy = oy * d.sh - d.ph + r;
      if (iy < 0 || iy >= d.h) continue;
      for (int64_t q = 0; q < d.kw; ++q) {
        int64_t ix = ox * d.sw - d.pw + q;
        if (ix < 0 || ix >= d.w) continue;
        int64_t i = iy * d.w + ix;
        if (best < 0 || plane[i] > plane[best]) best = i;
      }
    }
    return best;  // >= 0: opcheck::pool guarantees every window touches the input
  }

  void pool_forward(const PoolDesc& d, const Tensor& x, Tensor& y, Buffer&) override {
    check_pool("pool_forward", d, x, y);
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
            for (int64_t r = 0; r < d.kh; ++r) {
              int64_t iy = oy * d.sh - d.ph + r;
              if (iy < 0 || iy >= d.h) continue;
              for (int64_t q = 0; q < d.kw; ++q) {
                int64_t ix = ox * d.sw - d.pw + q;
                if (ix >= 0 && ix < d.w) s += plane[iy * d.w + ix];
              }
            }
            out = static_cast<float>(s / static_cast<double>(d.kh * d.kw));
          }
          y.data[(p * OH + oy) * OW + ox] = out;
        }
    }
  }

  void pool_backward(const PoolDesc& d, const Tensor& x, const Tensor& y, const Tensor& dy,
                     const Buffer&, Tensor& dx) override {
    check_pool("pool_backward", d, x, y);
    check_pool("pool_backward", d, dx, dy);
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
          for (int64_t r = 0; r < d.kh; ++r) {
            int64_t iy = oy * d.sh - d.ph + r;
            if (iy < 0 || iy >= d.h) continue;
            for (int64_t q = 0; q < d.kw; ++q) {
              int64_t ix = ox * d.sw - d.pw + q;
              if (ix >= 0 && ix < d.w) out[iy * d.w + ix] += g;
            }
          }
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
    opcheck::same("softmax_xent_forward", logits, probs);
    if (logits.shape.rank() < 1 || logits.shape[0] <= 0)
      throw RuntimeError("softmax_xent_forward: logits need a batch extent, got " + logits.shape.str());
    const int64_t n = logits.shape[0], k = logits.numel() / n;
    const bool have_labels = labels.data != nullptr && labels.numel() > 0;  // no data: prediction only
    if (have_labels) opcheck::numel("softmax_xent_forward", "labels", labels, n);
    if (metrics) opcheck::numel("softmax_xent_forward", "metrics", *metrics, kMetricSlots);
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
    opcheck::same("softmax_xent_backward", probs, dlogits);
    if (probs.shape.rank() < 1 || probs.shape[0] <= 0)
      throw RuntimeError("softmax_xent_backward: probs need a batch extent, got " + probs.shape.str());
    const int64_t n = probs.shape[0], k = probs.numel() / n;
    opcheck::numel("softmax_xent_backward", "labels", labels, n);
    for (int64_t i = 0; i < n; ++i) {
      int64_t l = label_at(labels, i, k);
      for (int64_t j = 0; j < k; ++j)
        dlogits.data[i * k + j] = (probs.data[i * k + j] - (j == l ? 1.0f : 0.0f)) * scale;
    }
  }

  // ---- optimizers --------------------------------------------------------------------
  void sgd_update(Tensor& w, const Tensor& g, Tensor* mom, float lr, float momentum,
                  float wd) override {
    opcheck::same("sgd_update", w, g);
    if (momentum != 0.0f) {
      if (!mom) throw RuntimeError("sgd_update: momentum " + std::to_string(momentum) + " needs a momentum tensor");
      opcheck::same("sgd_update", w, *mom);
    }
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
    opcheck::same("adam_update", w, g);
    opcheck::same("adam_update", w, m);
    opcheck::same("adam_update", w, v);
    if (step < 1) throw RuntimeError("adam_update: step counts from 1, got " + std::to_string(step));
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
