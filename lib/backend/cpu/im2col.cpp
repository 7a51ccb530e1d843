// im2col_nhwc and col2im_nhwc (im2col.h): one image per OpenMP iteration, one contiguous
// run per (output pixel, ky). im2col_t_nchw: one row of the transposed matrix per OpenMP
// iteration, one run per (image, oy).
#include "backend/cpu/im2col.h"

#include <omp.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define MNISTCTL_IM2COL_X86 1
#else
#define MNISTCTL_IM2COL_X86 0
#endif

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_features.h"

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

namespace {

// One row (channel ch, offset ky, kx) of im2col_t_nchw, elements of type T (the copy does
// not look at the values, so bf16 travels as uint16_t).
template <class T>
void im2col_t_row(const ConvDesc& d, const T* x, int64_t ch, int64_t ky, int64_t kx, T* out) {
  const int64_t oh = d.oh(), ow = d.ow();
  // The ox range whose input column ix = ox * sw - pw + kx lies inside [0, w).
  const int64_t first = kx - d.pw;  // ix at ox = 0
  int64_t ox0 = 0, ox1 = ow;
  while (ox0 < ow && ox0 * d.sw + first < 0) ++ox0;
  while (ox1 > ox0 && (ox1 - 1) * d.sw + first >= d.w) --ox1;
  for (int64_t img = 0; img < d.n; ++img) {
    const T* plane = x + (img * d.c + ch) * d.h * d.w;
    for (int64_t oy = 0; oy < oh; ++oy, out += ow) {
      const int64_t iy = oy * d.sh - d.ph + ky;
      if (iy < 0 || iy >= d.h) {
        std::fill(out, out + ow, T{0});
        continue;
      }
      const T* src = plane + iy * d.w;
      std::fill(out, out + ox0, T{0});
      if (d.sw == 1) {
        std::copy(src + ox0 + first, src + ox1 + first, out + ox0);
      } else {
        for (int64_t ox = ox0; ox < ox1; ++ox) out[ox] = src[ox * d.sw + first];
      }
      std::fill(out + ox1, out + ow, T{0});
    }
  }
}

#if MNISTCTL_IM2COL_X86
// The bf16 rows without padding, in AVX-512BW. One image's part of a row is the oh * ow
// values at plane offsets base + off[m], off[m] = (m / ow) * sh * w + (m % ow) * sw, base =
// ky * w + kx. Each block of 32 outputs is one two-source permute of the (at most 64)
// values from base + off[32q] on: masked loads (never past the span the block reads), the
// permute, a store (masked for the last block). Usable where every block's span fits the
// two registers (Permutes::ok); the scalar rows serve the rest.
struct Permutes {
  struct Block {
    int64_t start;        // off[32q]
    int64_t span;         // values the block reads from start on (its largest index + 1)
    int64_t count;        // outputs (32, fewer in the last block)
    uint16_t idx[32];     // off[32q + j] - start
  };
  std::vector<Block> blocks;
  bool ok = true;
  explicit Permutes(const ConvDesc& d) {
    const int64_t m_all = d.oh() * d.ow();
    for (int64_t q = 0; q < m_all; q += 32) {
      Block b{};
      auto off = [&](int64_t m) { return (m / d.ow()) * d.sh * d.w + (m % d.ow()) * d.sw; };
      b.start = off(q);
      b.count = std::min<int64_t>(32, m_all - q);
      for (int64_t j = 0; j < b.count; ++j) {
        const int64_t rel = off(q + j) - b.start;
        if (rel >= 64) ok = false;
        b.idx[j] = static_cast<uint16_t>(std::min<int64_t>(rel, 63));
        b.span = std::max(b.span, rel + 1);
      }
      blocks.push_back(b);
    }
    if (d.ph != 0 || d.pw != 0) ok = false;
  }
};

__attribute__((target("avx512f,avx512bw"))) void im2col_t_rows_bf16(const ConvDesc& d, const Permutes& perm,
                                                                     const uint16_t* x, uint16_t* cols_t,
                                                                     int64_t row0, int64_t row1) {
  const int64_t r = d.n * d.oh() * d.ow(), m_all = d.oh() * d.ow();
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t ch = row / (d.kh * d.kw), ky = row / d.kw % d.kh, kx = row % d.kw;
    uint16_t* out = cols_t + row * r;
    for (int64_t img = 0; img < d.n; ++img, out += m_all) {
      const uint16_t* base = x + (img * d.c + ch) * d.h * d.w + ky * d.w + kx;
      uint16_t* o = out;
      for (const Permutes::Block& b : perm.blocks) {
        const uint16_t* s = base + b.start;
        const int64_t lo = std::min<int64_t>(b.span, 32), hi = b.span - lo;
        const __m512i v0 = _mm512_maskz_loadu_epi16(static_cast<__mmask32>((uint64_t{1} << lo) - 1), s);
        const __m512i v1 = _mm512_maskz_loadu_epi16(static_cast<__mmask32>((uint64_t{1} << hi) - 1), s + 32);
        const __m512i v = _mm512_permutex2var_epi16(v0, _mm512_loadu_si512(b.idx), v1);
        _mm512_mask_storeu_epi16(o, static_cast<__mmask32>((uint64_t{1} << b.count) - 1), v);
        o += b.count;
      }
    }
  }
}

#endif

template <class T>
void im2col_t(const ConvDesc& d, const T* x, T* cols_t, int threads) {
  const int64_t p = d.c * d.kh * d.kw, r = d.n * d.oh() * d.ow();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t row = 0; row < p; ++row) {
    const int64_t ch = row / (d.kh * d.kw), ky = row / d.kw % d.kh, kx = row % d.kw;
    im2col_t_row(d, x, ch, ky, kx, cols_t + row * r);
  }
}

}  // namespace

void im2col_t_nchw(const ConvDesc& d, const void* x, size_t elem, void* cols_t, int threads) {
#if MNISTCTL_IM2COL_X86
  if (elem == 2 && cpu_has_avx512bw()) {
    const Permutes perm(d);
    if (perm.ok) {
      const int64_t p = d.c * d.kh * d.kw;
#pragma omp parallel num_threads(threads)
      {
        // Equal contiguous shares of the rows (the OpenMP loop stays outside the
        // target-attributed function, which clang requires).
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        im2col_t_rows_bf16(d, perm, static_cast<const uint16_t*>(x), static_cast<uint16_t*>(cols_t), p * t / nt,
                           p * (t + 1) / nt);
      }
      return;
    }
  }
#endif
  if (elem == 2) {
    im2col_t(d, static_cast<const uint16_t*>(x), static_cast<uint16_t*>(cols_t), threads);
  } else {
    im2col_t(d, static_cast<const uint32_t*>(x), static_cast<uint32_t*>(cols_t), threads);
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
