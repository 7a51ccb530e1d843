// Host-side layout conversions for the backend tests: NCHW data <-> the channels-last (nhwc,
// backend/tensor.h) order of the same (n, c, h, w) tensor.
#pragma once

#include <cstdint>
#include <vector>

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

}  // namespace mnistctl::test
