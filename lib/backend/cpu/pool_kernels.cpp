// Pooling loops for the CPU backend (see pool_kernels.h). The NCHW loops run over image
// planes (n*c of them), the channels-last ones over images, with a static schedule, and
// each plane or image is written by one thread only, so results do not depend on the
// thread count.
#include "backend/cpu/pool_kernels.h"

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/lanes.h"

#include <algorithm>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define MNISTCTL_POOL_X86 1
#else
#define MNISTCTL_POOL_X86 0
#endif

namespace mnistctl::cpu {
namespace {

// Below this many input elements the loops run on one thread: waking the pool costs more.
constexpr int64_t kParallelMin = 1 << 14;

// Calls f(iy, ix) for each tap of window (oy, ox) inside the input, row by row.
template <class F>
inline void for_each_tap(const PoolDesc& d, int64_t oy, int64_t ox, const F& f) {
  for (int64_t r = 0; r < d.kh; ++r) {
    const int64_t iy = oy * d.sh - d.ph + r;
    if (iy < 0 || iy >= d.h) continue;
    for (int64_t q = 0; q < d.kw; ++q) {
      const int64_t ix = ox * d.sw - d.pw + q;
      if (ix >= 0 && ix < d.w) f(iy, ix);
    }
  }
}

bool is_2x2_s2(const PoolDesc& d) {
  return d.kh == 2 && d.kw == 2 && d.sh == 2 && d.sw == 2 && d.ph == 0 && d.pw == 0;
}

// Index within the plane of the first maximum of window (oy, ox); padding never wins
// (the reference backend's rule). Every window touches the input (opcheck::pool).
inline int32_t window_argmax(const PoolDesc& d, const float* plane, int64_t oy, int64_t ox) {
  int64_t best = -1;
  for (int64_t r = 0; r < d.kh; ++r) {
    const int64_t iy = oy * d.sh - d.ph + r;
    if (iy < 0 || iy >= d.h) continue;
    for (int64_t q = 0; q < d.kw; ++q) {
      const int64_t ix = ox * d.sw - d.pw + q;
      if (ix < 0 || ix >= d.w) continue;
      const int64_t i = iy * d.w + ix;
      if (best < 0 || plane[i] > plane[best]) best = i;
    }
  }
  return static_cast<int32_t>(best);
}

// 2x2 stride 2: each output reads two adjacent pairs; the comparisons keep the reference's
// order (row by row, left to right, strictly greater replaces).
void max_2x2_forward(const PoolDesc& d, const float* x, float* y, int32_t* ws, int threads) {
  const int64_t H = d.h, W = d.w, OH = d.oh(), OW = d.ow(), planes = d.n * d.c;
#pragma omp parallel for schedule(static) num_threads(threads) if (planes * H * W >= kParallelMin)
  for (int64_t p = 0; p < planes; ++p) {
    const float* xp = x + p * H * W;
    float* yp = y + p * OH * OW;
    int32_t* wp = ws + p * OH * OW;
    for (int64_t oy = 0; oy < OH; ++oy) {
      const float* r0 = xp + (2 * oy) * W;
      const float* r1 = r0 + W;
      const int32_t base = static_cast<int32_t>(2 * oy * W);
      for (int64_t ox = 0; ox < OW; ++ox) {
        const int64_t ix = 2 * ox;
        float best = r0[ix];
        int32_t at = base + static_cast<int32_t>(ix);
        if (r0[ix + 1] > best) best = r0[ix + 1], at = base + static_cast<int32_t>(ix + 1);
        if (r1[ix] > best) best = r1[ix], at = base + static_cast<int32_t>(W + ix);
        if (r1[ix + 1] > best) best = r1[ix + 1], at = base + static_cast<int32_t>(W + ix + 1);
        yp[oy * OW + ox] = best;
        wp[oy * OW + ox] = at;
      }
    }
  }
}

void avg_2x2_forward(const PoolDesc& d, const float* x, float* y, int threads) {
  const int64_t H = d.h, W = d.w, OH = d.oh(), OW = d.ow(), planes = d.n * d.c;
#pragma omp parallel for schedule(static) num_threads(threads) if (planes * H * W >= kParallelMin)
  for (int64_t p = 0; p < planes; ++p) {
    const float* xp = x + p * H * W;
    float* yp = y + p * OH * OW;
    for (int64_t oy = 0; oy < OH; ++oy) {
      const float* r0 = xp + (2 * oy) * W;
      const float* r1 = r0 + W;
      for (int64_t ox = 0; ox < OW; ++ox)
        yp[oy * OW + ox] = ((r0[2 * ox] + r0[2 * ox + 1]) + (r1[2 * ox] + r1[2 * ox + 1])) * 0.25f;
    }
  }
}

// 2x2 stride 2 backward: windows do not overlap, so every input cell gets at most one
// value and dx is written once, no accumulation.
void max_2x2_backward(const PoolDesc& d, const float* dy, const int32_t* ws, float* dx,
                      int threads) {
  const int64_t H = d.h, W = d.w, OH = d.oh(), OW = d.ow(), planes = d.n * d.c;
#pragma omp parallel for schedule(static) num_threads(threads) if (planes * H * W >= kParallelMin)
  for (int64_t p = 0; p < planes; ++p) {
    float* dp = dx + p * H * W;
    const float* gp = dy + p * OH * OW;
    const int32_t* wp = ws + p * OH * OW;
    std::fill(dp, dp + H * W, 0.0f);
    for (int64_t i = 0; i < OH * OW; ++i) dp[wp[i]] = gp[i];
  }
}

void avg_2x2_backward(const PoolDesc& d, const float* dy, float* dx, int threads) {
  const int64_t H = d.h, W = d.w, OH = d.oh(), OW = d.ow(), planes = d.n * d.c;
#pragma omp parallel for schedule(static) num_threads(threads) if (planes * H * W >= kParallelMin)
  for (int64_t p = 0; p < planes; ++p) {
    float* dp = dx + p * H * W;
    const float* gp = dy + p * OH * OW;
    for (int64_t iy = 0; iy < H; ++iy) {
      float* row = dp + iy * W;
      const int64_t oy = iy / 2;
      if (oy >= OH) {  // the floor convention drops an odd last row
        std::fill(row, row + W, 0.0f);
        continue;
      }
      for (int64_t ix = 0; ix < W; ++ix)
        row[ix] = ix / 2 < OW ? gp[oy * OW + ix / 2] * 0.25f : 0.0f;
    }
  }
}

// Any window, stride and padding. Forward as the reference: max by window_argmax, average
// summed in double and divided by the full window (count_include_pad).
void generic_forward(const PoolDesc& d, const float* x, float* y, int32_t* ws, int threads) {
  const int64_t H = d.h, W = d.w, OH = d.oh(), OW = d.ow(), planes = d.n * d.c;
  const double area = static_cast<double>(d.kh * d.kw);
#pragma omp parallel for schedule(static) num_threads(threads) if (planes * H * W >= kParallelMin)
  for (int64_t p = 0; p < planes; ++p) {
    const float* xp = x + p * H * W;
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        const int64_t o = (p * OH + oy) * OW + ox;
        if (d.type == PoolType::max) {
          const int32_t at = window_argmax(d, xp, oy, ox);
          y[o] = xp[at];
          ws[o] = at;
          continue;
        }
        double s = 0.0;
        for (int64_t r = 0; r < d.kh; ++r) {
          const int64_t iy = oy * d.sh - d.ph + r;
          if (iy < 0 || iy >= H) continue;
          for (int64_t q = 0; q < d.kw; ++q) {
            const int64_t ix = ox * d.sw - d.pw + q;
            if (ix >= 0 && ix < W) s += xp[iy * W + ix];
          }
        }
        y[o] = static_cast<float>(s / area);
      }
  }
}

// Windows may overlap: each plane accumulates in double (in the reference's order) in a
// per-thread buffer, then is rounded to float once.
void generic_backward(const PoolDesc& d, const float* dy, const int32_t* ws, float* dx,
                      int threads) {
  const int64_t H = d.h, W = d.w, OH = d.oh(), OW = d.ow(), planes = d.n * d.c;
  const double area = static_cast<double>(d.kh * d.kw);
#pragma omp parallel num_threads(threads) if (planes * H * W >= kParallelMin)
  {
    std::vector<double> acc(static_cast<size_t>(H * W));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t o = (p * OH + oy) * OW + ox;
          double g = dy[o];
          if (d.type == PoolType::max) {
            acc[static_cast<size_t>(ws[o])] += g;
            continue;
          }
          g /= area;
          for (int64_t r = 0; r < d.kh; ++r) {
            const int64_t iy = oy * d.sh - d.ph + r;
            if (iy < 0 || iy >= H) continue;
            for (int64_t q = 0; q < d.kw; ++q) {
              const int64_t ix = ox * d.sw - d.pw + q;
              if (ix >= 0 && ix < W) acc[static_cast<size_t>(iy * W + ix)] += g;
            }
          }
        }
      float* dp = dx + p * H * W;
      for (int64_t i = 0; i < H * W; ++i) dp[i] = static_cast<float>(acc[static_cast<size_t>(i)]);
    }
  }
}

// 2x2 stride 2 on a channels-last input (LeNet's poolings in the layout plan): a cell's four
// taps are four C-vectors, compared in the reference's order (strictly greater replaces) with
// the channels innermost; averages summed in double as generic_forward does.
void nhwc_2x2_forward(const PoolDesc& d, const float* x, float* y, int32_t* ws, bool y_nhwc, int threads) {
  const int64_t C = d.c, H = d.h, W = d.w, OH = d.oh(), OW = d.ow();
  const int64_t cs = y_nhwc ? 1 : OH * OW;  // output stride from one channel to the next
  const int64_t ps = y_nhwc ? C : 1;        // output stride from one cell to the next
  const bool max = d.type == PoolType::max;
#pragma omp parallel for schedule(static) num_threads(threads) if (d.n * C * H * W >= kParallelMin)
  for (int64_t n = 0; n < d.n; ++n) {
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        const int32_t i0 = static_cast<int32_t>(2 * oy * W + 2 * ox), i1 = i0 + 1;
        const int32_t i2 = i0 + static_cast<int32_t>(W), i3 = i2 + 1;
        const float* __restrict p0 = x + (n * H * W + i0) * C;
        const float* __restrict p1 = p0 + C;
        const float* __restrict p2 = p0 + W * C;
        const float* __restrict p3 = p2 + C;
        const int64_t o = n * OH * OW * C + (oy * OW + ox) * ps;
        float* __restrict yo = y + o;
        if (!max) {
          for (int64_t c = 0; c < C; ++c) {
            double s = p0[c];
            s += p1[c];
            s += p2[c];
            s += p3[c];
            yo[c * cs] = static_cast<float>(s / 4.0);
          }
          continue;
        }
        int32_t* __restrict wo = ws + o;
        for (int64_t c = 0; c < C; ++c) {
          float b = p0[c];
          int32_t a = i0;
          if (p1[c] > b) b = p1[c], a = i1;
          if (p2[c] > b) b = p2[c], a = i2;
          if (p3[c] > b) b = p3[c], a = i3;
          yo[c * cs] = b;
          wo[c * cs] = a;
        }
      }
  }
}

// Max pooling backward on a channels-last dx where the windows do not overlap (stride >=
// window both ways; LeNet's 2x2 stride 2): each input cell receives at most one value, so dx
// is zeroed and each dy written once, at its argmax. The zeroing goes band by band (the
// input rows up to the end of output row oy's windows) right before that row's writes, so
// that they land in lines still in cache.
void nhwc_disjoint_max_backward(const PoolDesc& d, const float* dy, const int32_t* ws, float* dx, bool dy_nhwc,
                                int threads) {
  const int64_t C = d.c, H = d.h, W = d.w, OH = d.oh(), OW = d.ow();
  const int64_t cs = dy_nhwc ? 1 : OH * OW;  // dy (and ws) stride from one channel to the next
  const int64_t ps = dy_nhwc ? C : 1;        // dy (and ws) stride from one cell to the next
#pragma omp parallel for schedule(static) num_threads(threads) if (d.n * C * H * W >= kParallelMin)
  for (int64_t n = 0; n < d.n; ++n) {
    float* __restrict dxi = dx + n * H * W * C;
    int64_t zeroed = 0;  // input rows [0, zeroed) are zero or written
    for (int64_t oy = 0; oy < OH; ++oy) {
      const int64_t end = std::min(H, oy * d.sh - d.ph + d.kh);
      if (end > zeroed) std::fill(dxi + zeroed * W * C, dxi + end * W * C, 0.0f);
      zeroed = std::max(zeroed, end);
      for (int64_t ox = 0; ox < OW; ++ox) {
        const int64_t o = n * OH * OW * C + (oy * OW + ox) * ps;
        const float* __restrict g = dy + o;
        const int32_t* __restrict a = ws + o;
        for (int64_t c = 0; c < C; ++c) dxi[a[c * cs] * C + c] = g[c * cs];
      }
    }
    std::fill(dxi + zeroed * W * C, dxi + H * W * C, 0.0f);  // rows below the last window
  }
}

// Channels-last input (nhwc, tensor.h), output in either layout: one image per iteration,
// each output cell's taps in the reference's order (row by row, strictly greater replaces;
// averages summed in double and divided by the full window) with the channels innermost,
// where they are contiguous. Per channel the same arithmetic as generic_forward, so the
// results equal the NCHW loops' bit for bit (max) or the reference's (average).
void nhwc_forward(const PoolDesc& d, const float* x, float* y, int32_t* ws, bool y_nhwc, int threads) {
  const int64_t C = d.c, H = d.h, W = d.w, OH = d.oh(), OW = d.ow();
  const int64_t cs = y_nhwc ? 1 : OH * OW;  // output stride from one channel to the next
  const int64_t ps = y_nhwc ? C : 1;        // output stride from one cell to the next
  const bool max = d.type == PoolType::max;
  const double area = static_cast<double>(d.kh * d.kw);
#pragma omp parallel num_threads(threads) if (d.n * C * H * W >= kParallelMin)
  {
    std::vector<float> best(static_cast<size_t>(C));
    std::vector<int32_t> at(static_cast<size_t>(C));
    std::vector<double> sum(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < d.n; ++n) {
      const float* xi = x + n * H * W * C;
      float* yi = y + n * OH * OW * C;
      int32_t* wi = max ? ws + n * OH * OW * C : nullptr;
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          bool first = true;
          for_each_tap(d, oy, ox, [&](int64_t iy, int64_t ix) {
            const float* v = xi + (iy * W + ix) * C;
            const int32_t i = static_cast<int32_t>(iy * W + ix);
            if (max && first) {
              for (int64_t c = 0; c < C; ++c) best[c] = v[c], at[c] = i;
            } else if (max) {
              for (int64_t c = 0; c < C; ++c)
                if (v[c] > best[c]) best[c] = v[c], at[c] = i;
            } else {
              for (int64_t c = 0; c < C; ++c) sum[c] = (first ? 0.0 : sum[c]) + v[c];
            }
            first = false;
          });
          const int64_t o = (oy * OW + ox) * ps;
          if (max) {
            for (int64_t c = 0; c < C; ++c) yi[o + c * cs] = best[c], wi[o + c * cs] = at[c];
          } else {
            for (int64_t c = 0; c < C; ++c) yi[o + c * cs] = static_cast<float>(sum[c] / area);
          }
        }
    }
  }
}

// The gradient into a channels-last dx from dy (and the argmax indices, laid out as dy) in
// either layout, for windows that may overlap: each image accumulates in double, per channel
// in generic_backward's order.
void nhwc_backward(const PoolDesc& d, const float* dy, const int32_t* ws, float* dx, bool dy_nhwc,
                   int threads) {
  const int64_t C = d.c, H = d.h, W = d.w, OH = d.oh(), OW = d.ow();
  const int64_t cs = dy_nhwc ? 1 : OH * OW;
  const int64_t ps = dy_nhwc ? C : 1;
  const bool max = d.type == PoolType::max;
  const double area = static_cast<double>(d.kh * d.kw);
#pragma omp parallel num_threads(threads) if (d.n * C * H * W >= kParallelMin)
  {
    std::vector<double> acc(static_cast<size_t>(H * W * C));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < d.n; ++n) {
      float* dxi = dx + n * H * W * C;
      const float* gi = dy + n * OH * OW * C;
      const int32_t* wi = max ? ws + n * OH * OW * C : nullptr;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t o = (oy * OW + ox) * ps;
          if (max) {
            for (int64_t c = 0; c < C; ++c) acc[static_cast<size_t>(wi[o + c * cs] * C + c)] += gi[o + c * cs];
            continue;
          }
          for_each_tap(d, oy, ox, [&](int64_t iy, int64_t ix) {
            double* a = acc.data() + (iy * W + ix) * C;
            for (int64_t c = 0; c < C; ++c) a[c] += static_cast<double>(gi[o + c * cs]) / area;
          });
        }
      for (int64_t i = 0; i < H * W * C; ++i) dxi[i] = static_cast<float>(acc[static_cast<size_t>(i)]);
    }
  }
}

#if MNISTCTL_POOL_X86
// The forward of LeNet's poolings on the CPU (max, 2x2, stride 2, no padding, nhwc in and
// out), with the channels as AVX-512 lanes, 16 at a time and a masked tail: the same
// comparisons as nhwc_2x2_forward (strictly greater replaces, taps in row order), so the
// same results bit for bit. Its backward the same way follows (which machine it measured
// faster or slower on than nhwc_disjoint_max_backward: docs/performance.md, section 6).
//
// One image. The OpenMP loop stays outside the target-attributed code (clang does not give
// a parallel region's outlined body the attribute).
// Window (oy, ox) of image n of a 2x2, stride-2 pooling: its four taps (the index in the
// input plane, in row order) and its output cell's offset (channels-last).
struct Window2x2 {
  int32_t tap[4];
  int64_t o;
  Window2x2(const PoolDesc& d, int64_t n, int64_t oy, int64_t ox) {
    const int32_t i0 = static_cast<int32_t>(2 * oy * d.w + 2 * ox), i2 = i0 + static_cast<int32_t>(d.w);
    tap[0] = i0, tap[1] = i0 + 1, tap[2] = i2, tap[3] = i2 + 1;
    o = (n * d.oh() * d.ow() + oy * d.ow() + ox) * d.c;
  }
};

__attribute__((target("avx512f"))) void nhwc_2x2_max_forward_image(const PoolDesc& d, const float* x, float* y,
                                                                      int32_t* ws, int64_t n) {
  const int64_t C = d.c, H = d.h, W = d.w, OH = d.oh(), OW = d.ow();
  const float* p = x + n * H * W * C;
  for (int64_t oy = 0; oy < OH; ++oy)
    for (int64_t ox = 0; ox < OW; ++ox) {
      const Window2x2 win(d, n, oy, ox);
      const int32_t* tap = win.tap;
      const int64_t o = win.o;
      for (int64_t c = 0; c < C; c += 16) {
        const __mmask16 m = lanes16(C - c);
        __m512 best = _mm512_maskz_loadu_ps(m, p + tap[0] * C + c);
        __m512i at = _mm512_set1_epi32(tap[0]);
        for (int k = 1; k < 4; ++k) {
          const __m512 v = _mm512_maskz_loadu_ps(m, p + tap[k] * C + c);
          const __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
          best = _mm512_mask_mov_ps(best, gt, v);
          at = _mm512_mask_mov_epi32(at, gt, _mm512_set1_epi32(tap[k]));
        }
        _mm512_mask_storeu_ps(y + o + c, m, best);
        _mm512_mask_storeu_epi32(ws + o + c, m, at);
      }
    }
}

// Its backward, nhwc to nhwc: each window's four cells are written once, dy where the
// window's argmax (ws) is, zero elsewhere, with the channels as lanes, so dx needs no zeroing
// pass and no scattered stores. Rows and columns past the last window are zeroed. The same
// values as nhwc_disjoint_max_backward's, bit for bit.
__attribute__((target("avx512f"))) void nhwc_2x2_max_backward_image(const PoolDesc& d, const float* dy,
                                                                       const int32_t* ws, float* dx, int64_t n) {
  const int64_t C = d.c, H = d.h, W = d.w, OH = d.oh(), OW = d.ow();
  float* p = dx + n * H * W * C;
  for (int64_t oy = 0; oy < OH; ++oy) {
    for (int64_t ox = 0; ox < OW; ++ox) {
      const Window2x2 win(d, n, oy, ox);
      const int32_t* tap = win.tap;
      const int64_t o = win.o;
      for (int64_t c = 0; c < C; c += 16) {
        const __mmask16 m = lanes16(C - c);
        const __m512 g = _mm512_maskz_loadu_ps(m, dy + o + c);
        const __m512i at = _mm512_maskz_loadu_epi32(m, ws + o + c);
        for (int k = 0; k < 4; ++k) {
          const __mmask16 hit = _mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(tap[k]));
          _mm512_mask_storeu_ps(p + tap[k] * C + c, m, _mm512_maskz_mov_ps(hit, g));
        }
      }
    }
    if (W > 2 * OW) std::fill(p + (2 * oy * W + 2 * OW) * C, p + (2 * oy * W + W) * C, 0.0f);
    if (W > 2 * OW) std::fill(p + ((2 * oy + 1) * W + 2 * OW) * C, p + ((2 * oy + 1) * W + W) * C, 0.0f);
  }
  std::fill(p + 2 * OH * W * C, p + H * W * C, 0.0f);
}

void nhwc_2x2_max_backward_avx512(const PoolDesc& d, const float* dy, const int32_t* ws, float* dx, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (d.n * d.c * d.h * d.w >= kParallelMin)
  for (int64_t n = 0; n < d.n; ++n) nhwc_2x2_max_backward_image(d, dy, ws, dx, n);
}

void nhwc_2x2_max_forward_avx512(const PoolDesc& d, const float* x, float* y, int32_t* ws, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (d.n * d.c * d.h * d.w >= kParallelMin)
  for (int64_t n = 0; n < d.n; ++n) nhwc_2x2_max_forward_image(d, x, y, ws, n);
}
#endif

}  // namespace

size_t pool_workspace_bytes(const PoolDesc& d) {
  if (d.type != PoolType::max) return 0;
  return static_cast<size_t>(d.n * d.c * d.oh() * d.ow()) * sizeof(int32_t);
}

void pool_forward(const PoolDesc& d, Layout in, Layout out, const float* x, float* y, int32_t* ws,
                  int threads) {
#if MNISTCTL_POOL_X86
  if (in == Layout::nhwc && out == Layout::nhwc && is_2x2_s2(d) && d.type == PoolType::max && cpu_has_avx512f())
    return nhwc_2x2_max_forward_avx512(d, x, y, ws, threads);
#endif
  if (in == Layout::nhwc && is_2x2_s2(d)) return nhwc_2x2_forward(d, x, y, ws, out == Layout::nhwc, threads);
  if (in == Layout::nhwc) return nhwc_forward(d, x, y, ws, out == Layout::nhwc, threads);
  if (!is_2x2_s2(d)) return generic_forward(d, x, y, ws, threads);
  if (d.type == PoolType::max) return max_2x2_forward(d, x, y, ws, threads);
  avg_2x2_forward(d, x, y, threads);
}

void pool_backward(const PoolDesc& d, Layout in, Layout out, const float* dy, const int32_t* ws, float* dx,
                   int threads) {
#if MNISTCTL_POOL_X86
  if (in == Layout::nhwc && out == Layout::nhwc && is_2x2_s2(d) && d.type == PoolType::max && cpu_has_avx512f())
    return nhwc_2x2_max_backward_avx512(d, dy, ws, dx, threads);
#endif
  if (in == Layout::nhwc && d.type == PoolType::max && d.sh >= d.kh && d.sw >= d.kw)
    return nhwc_disjoint_max_backward(d, dy, ws, dx, out == Layout::nhwc, threads);
  if (in == Layout::nhwc) return nhwc_backward(d, dy, ws, dx, out == Layout::nhwc, threads);
  if (!is_2x2_s2(d)) return generic_backward(d, dy, ws, dx, threads);
  if (d.type == PoolType::max) return max_2x2_backward(d, dy, ws, dx, threads);
  avg_2x2_backward(d, dy, dx, threads);
}

}  // namespace mnistctl::cpu
