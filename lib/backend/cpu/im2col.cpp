// im2col_nhwc and col2im_nhwc (im2col.h): one image per OpenMP iteration, one contiguous
// run per (output pixel, ky).
#include "backend/cpu/im2col.h"

#include <algorithm>
#include <cstring>

namespace mnistctl::cpu {
namespace {

// The kx range [kx0, kx1) whose input column ix = ox * sw - pw + kx lies inside [0, w).
struct KxRange {
  int64_t kx0, kx1, ix0;
};
KxRange kx_range(const ConvDesc& d, int64_t ox) {
  const int64_t start = ox * d.sw - d.pw;
  const int64_t kx0 = std::clamp<int64_t>(-start, 0, d.kw), kx1 = std::clamp<int64_t>(d.w - start, kx0, d.kw);
  return {kx0, kx1, start + kx0};
}

}  // namespace

void im2col_nhwc(const ConvDesc& d, const void* x, size_t elem, void* cols, int threads) {
  const int64_t oh = d.oh(), ow = d.ow(), c = d.c;
  const size_t run = static_cast<size_t>(d.kw * c) * elem;  // one ky's part of a row, in bytes
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(cols);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t img = 0; img < d.n; ++img) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        unsigned char* row = dst + static_cast<size_t>((img * oh + oy) * ow + ox) * d.kh * run;
        const KxRange r = kx_range(d, ox);
        for (int64_t ky = 0; ky < d.kh; ++ky, row += run) {
          const int64_t iy = oy * d.sh - d.ph + ky;
          if (iy < 0 || iy >= d.h || r.kx0 == r.kx1) {
            std::memset(row, 0, run);
            continue;
          }
          const size_t head = static_cast<size_t>(r.kx0 * c) * elem, body = static_cast<size_t>((r.kx1 - r.kx0) * c) * elem;
          if (head) std::memset(row, 0, head);
          std::memcpy(row + head, src + static_cast<size_t>(((img * d.h + iy) * d.w + r.ix0) * c) * elem, body);
          if (head + body < run) std::memset(row + head + body, 0, run - head - body);
        }
      }
    }
  }
}

void col2im_nhwc(const ConvDesc& d, const float* dcols, float* dx, int threads) {
  const int64_t oh = d.oh(), ow = d.ow(), c = d.c, p = d.kh * d.kw * c;
  const int64_t plane = d.h * d.w * c;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t img = 0; img < d.n; ++img) {
    float* out = dx + img * plane;
    std::fill(out, out + plane, 0.0f);
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        const float* row = dcols + ((img * oh + oy) * ow + ox) * p;
        const KxRange r = kx_range(d, ox);
        const int64_t len = (r.kx1 - r.kx0) * c;
        if (len == 0) continue;  // the window lies wholly in the padding
        for (int64_t ky = 0; ky < d.kh; ++ky) {
          const int64_t iy = oy * d.sh - d.ph + ky;
          if (iy < 0 || iy >= d.h) continue;
          const float* s = row + (ky * d.kw + r.kx0) * c;
          float* t = out + (iy * d.w + r.ix0) * c;
          for (int64_t i = 0; i < len; ++i) t[i] += s[i];
        }
      }
    }
  }
}

}  // namespace mnistctl::cpu
