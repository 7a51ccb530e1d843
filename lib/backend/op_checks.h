// Argument checks shared by the backends (ref, cpu and cuda).
//
// Every op checks that the tensors it is handed hold as many elements as its descriptor
// says, and throws RuntimeError naming the op and the sizes otherwise: a layer that passes
// the wrong tensor gets a clear message instead of an out-of-bounds write. The checks cost
// a few compares per call, nothing next to the op itself. The per-op checks below (fc_*,
// conv_args, softmax_xent_*, sgd_update, adam_update) are written once here so that the
// backends cannot drift apart in what they accept.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "core/error.h"

namespace mnistctl::opcheck {

inline void numel(const char* op, const char* what, const Tensor& t, int64_t expected) {
  if (t.numel() != expected || (expected > 0 && t.data == nullptr))
    throw RuntimeError(std::string(op) + ": " + what + " has " + std::to_string(t.numel()) +
                       " elements (shape " + t.shape.str() + "), expected " +
                       std::to_string(expected));
}

inline void same(const char* op, const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel())
    throw RuntimeError(std::string(op) + ": tensors differ in size (" + a.shape.str() + " vs " +
                       b.shape.str() + ")");
  if (a.layout != b.layout)
    throw RuntimeError(std::string(op) + ": tensors differ in layout (one nchw, one nhwc)");
}

// A tensor an op reads or writes as NCHW: a channels-last one (tensor.h) is refused, never
// read in the wrong order. Fully connected always (a flattened nhwc tensor is another
// vector); convolution and pooling on backends that do not accept nhwc.
inline void nchw(const char* op, const char* what, const Tensor& t) {
  if (t.layout != Layout::nchw)
    throw RuntimeError(std::string(op) + ": " + what + " is channels-last (nhwc); this op takes NCHW");
}

inline void positive(const char* op, int64_t v, const char* what) {
  if (v <= 0) throw RuntimeError(std::string(op) + ": " + what + " must be positive");
}

inline void fc(const char* op, const FcDesc& d) {
  positive(op, d.n, "n");
  positive(op, d.in, "in");
  positive(op, d.out, "out");
}

inline void conv(const char* op, const ConvDesc& d) {
  positive(op, d.n, "n");
  positive(op, d.c, "c");
  positive(op, d.k, "k");
  positive(op, d.sh, "stride");
  positive(op, d.sw, "stride");
  if (d.ph < 0 || d.pw < 0) throw RuntimeError(std::string(op) + ": negative padding");
  if (d.kh <= 0 || d.kw <= 0 || d.oh() <= 0 || d.ow() <= 0 || d.h + 2 * d.ph < d.kh ||
      d.w + 2 * d.pw < d.kw)
    throw RuntimeError(std::string(op) + ": kernel " + std::to_string(d.kh) + "x" +
                       std::to_string(d.kw) + " does not fit the padded input " +
                       std::to_string(d.h) + "x" + std::to_string(d.w));
}

inline void pool(const char* op, const PoolDesc& d) {
  positive(op, d.n, "n");
  positive(op, d.c, "c");
  positive(op, d.sh, "stride");
  positive(op, d.sw, "stride");
  if (d.ph < 0 || d.pw < 0) throw RuntimeError(std::string(op) + ": negative padding");
  // A padding as large as the window would make windows that see only padding.
  if (d.kh <= 0 || d.kw <= 0 || d.ph >= d.kh || d.pw >= d.kw || d.h + 2 * d.ph < d.kh ||
      d.w + 2 * d.pw < d.kw)
    throw RuntimeError(std::string(op) + ": window " + std::to_string(d.kh) + "x" +
                       std::to_string(d.kw) + " (padding " + std::to_string(d.ph) + "," +
                       std::to_string(d.pw) + ") does not fit the input " + std::to_string(d.h) +
                       "x" + std::to_string(d.w));
}

// A pooling op's input (x or dx) and output (y or dy). Layouts: NCHW only, or (`any_layout`,
// Backend::accepts_nhwc) any pair except an nhwc output from an NCHW input, which the
// network plan never asks for.
inline void pool_args(const char* op, const PoolDesc& d, const Tensor& x, const Tensor& y,
                      bool any_layout = false) {
  pool(op, d);
  numel(op, "x/dx", x, d.n * d.c * d.h * d.w);
  numel(op, "y/dy", y, d.n * d.c * d.oh() * d.ow());
  if (!any_layout) {
    nchw(op, "x/dx", x);
    nchw(op, "y/dy", y);
  } else if (x.layout == Layout::nchw && y.layout == Layout::nhwc) {
    throw RuntimeError(std::string(op) + ": an nhwc output needs an nhwc input");
  }
}

// ---- per-op checks ------------------------------------------------------------------

inline void fc_forward(const FcDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                       const Tensor& y) {
  const char* op = "fc_forward";
  fc(op, d);
  numel(op, "x", x, d.n * d.in);
  nchw(op, "x", x);
  numel(op, "w", w, d.out * d.in);
  if (b) numel(op, "b", *b, d.out);
  numel(op, "y", y, d.n * d.out);
}

inline void fc_backward_data(const FcDesc& d, const Tensor& dy, const Tensor& w,
                             const Tensor& dx) {
  const char* op = "fc_backward_data";
  fc(op, d);
  numel(op, "dy", dy, d.n * d.out);
  numel(op, "w", w, d.out * d.in);
  numel(op, "dx", dx, d.n * d.in);
  nchw(op, "dx", dx);
}

inline void fc_backward_weights(const FcDesc& d, const Tensor& x, const Tensor& dy,
                                const Tensor& dw, const Tensor* db) {
  const char* op = "fc_backward_weights";
  fc(op, d);
  numel(op, "x", x, d.n * d.in);
  nchw(op, "x", x);
  numel(op, "dy", dy, d.n * d.out);
  numel(op, "dw", dw, d.out * d.in);
  if (db) numel(op, "db", *db, d.out);
}

// The three convolution ops see the same three shapes: x or dx, w or dw, y or dy. The
// weights are always KCRS; x and y may be nhwc where the backend accepts it (`any_layout`).
inline void conv_args(const char* op, const ConvDesc& d, const Tensor& x, const Tensor& w,
                      const Tensor& y, bool any_layout = false) {
  conv(op, d);
  numel(op, "x/dx", x, d.n * d.c * d.h * d.w);
  numel(op, "w/dw", w, d.k * d.c * d.kh * d.kw);
  numel(op, "y/dy", y, d.n * d.k * d.oh() * d.ow());
  nchw(op, "w/dw", w);
  if (!any_layout) {
    nchw(op, "x/dx", x);
    nchw(op, "y/dy", y);
  }
}

// Softmax rows: n = extent 0 (at least one), k = the rest of a row.
struct Rows {
  int64_t n, k;
};
// The forward pass also says whether it has labels (labels.data == nullptr or an empty
// tensor: prediction only).
struct SoftmaxRows {
  int64_t n, k;
  bool labels;
};

inline SoftmaxRows softmax_xent_forward(const Tensor& logits, const Tensor& labels,
                                        const Tensor& probs, const Tensor* metrics) {
  const char* op = "softmax_xent_forward";
  same(op, logits, probs);
  if (logits.shape.rank() < 1 || logits.shape[0] <= 0)
    throw RuntimeError(std::string(op) + ": logits need a batch extent, got " + logits.shape.str());
  const int64_t n = logits.shape[0];
  const bool have_labels = labels.data != nullptr && labels.numel() > 0;
  if (have_labels) numel(op, "labels", labels, n);
  if (metrics) numel(op, "metrics", *metrics, kMetricSlots);
  return {n, logits.numel() / n, have_labels};
}

inline Rows softmax_xent_backward(const Tensor& probs, const Tensor& labels,
                                  const Tensor& dlogits) {
  const char* op = "softmax_xent_backward";
  same(op, probs, dlogits);
  if (probs.shape.rank() < 1 || probs.shape[0] <= 0)
    throw RuntimeError(std::string(op) + ": probs need a batch extent, got " + probs.shape.str());
  const int64_t n = probs.shape[0];
  numel(op, "labels", labels, n);
  return {n, probs.numel() / n};
}

inline void sgd_update(const Tensor& w, const Tensor& g, const Tensor* mom, float momentum) {
  const char* op = "sgd_update";
  same(op, w, g);
  if (momentum != 0.0f) {
    if (!mom)
      throw RuntimeError(std::string(op) + ": momentum " + std::to_string(momentum) +
                         " needs a momentum tensor");
    same(op, w, *mom);
  }
}

inline void adam_update(const Tensor& w, const Tensor& g, const Tensor& m, const Tensor& v,
                        int64_t step) {
  const char* op = "adam_update";
  same(op, w, g);
  same(op, w, m);
  same(op, w, v);
  if (step < 1)
    throw RuntimeError(std::string(op) + ": step counts from 1, got " + std::to_string(step));
}

}  // namespace mnistctl::opcheck
