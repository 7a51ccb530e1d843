// Layout helpers for the backend tests: NCHW host data <-> the channels-last (nhwc,
// backend/tensor.h) order of the same (n, c, h, w) tensor, and rank-4 tensors made in, and
// read back from, either layout.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace mnistctl::test {

inline std::vector<float> to_nhwc(const std::vector<float>& v, int64_t n, int64_t c, int64_t h, int64_t w) {
  std::vector<float> out(v.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < h * w; ++p)
        out[static_cast<size_t>((i * h * w + p) * c + k)] = v[static_cast<size_t>((i * c + k) * h * w + p)];
  return out;
}

inline std::vector<float> from_nhwc(const std::vector<float>& v, int64_t n, int64_t c, int64_t h, int64_t w) {
  std::vector<float> out(v.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < h * w; ++p)
        out[static_cast<size_t>((i * c + k) * h * w + p)] = v[static_cast<size_t>((i * h * w + p) * c + k)];
  return out;
}

// A rank-4 tensor of shape s in layout l on b, from NCHW host data.
inline Tensor upload_as(Backend& b, const Shape& s, const std::vector<float>& nchw, Layout l) {
  Tensor t = b.empty(s);
  t.layout = l;
  const std::vector<float> h = l == Layout::nhwc ? to_nhwc(nchw, s[0], s[1], s[2], s[3]) : nchw;
  b.upload(t, h.data());
  return t;
}
inline Tensor empty_as(Backend& b, const Shape& s, Layout l) {
  Tensor t = b.empty(s);
  t.layout = l;
  return t;
}
// A rank-4 tensor's values in NCHW order, whatever its layout.
inline std::vector<float> download_nchw(Backend& b, const Tensor& t) {
  std::vector<float> h(static_cast<size_t>(t.numel()));
  b.synchronize();
  b.download(t, h.data());
  return t.layout == Layout::nhwc ? from_nhwc(h, t.shape[0], t.shape[1], t.shape[2], t.shape[3]) : h;
}

}  // namespace mnistctl::test
