// The span loops of span_conv.h. The vector code is compiled for AVX-512F with a target
// attribute and only called after span_conv_supported(), so the rest of the library keeps
// the baseline ISA. A tile's accumulators are arrays indexed by template constants only,
// which the compiler keeps in registers: V vectors of span times up to 4 images (or
// filters), with room left for the V vectors loaded per step and one broadcast.
#include "backend/cpu/span_conv.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/lanes.h"
#include "backend/cpu/parallel_ranges.h"
#include "core/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MNISTCTL_SPAN_X86 1
#else
#define MNISTCTL_SPAN_X86 0
#endif

namespace mnistctl::cpu {
namespace {

constexpr int64_t kLanes = 16;       // floats in an AVX-512 vector
constexpr int kMaxSpanVectors = 7;   // the longest span kept in registers
constexpr int64_t kGroupImages = 2;  // backward-weights: images whose x and dy stay in cache per pass

// The geometry, as plain integers.
struct Geo {
  int64_t n, h, w, c, k, kh, kw, sh, sw, ph, oh, ow;
  int64_t span;   // kw * c: the floats of one window row
  int vectors;    // ceil(span / 16)
  int64_t row;    // floats per (kernel row, filter) row of the packed weights: whole vectors
  int64_t kpad;   // k rounded up to whole vectors (a partial db)
  explicit Geo(const ConvDesc& d)
      : n(d.n), h(d.h), w(d.w), c(d.c), k(d.k), kh(d.kh), kw(d.kw), sh(d.sh), sw(d.sw), ph(d.ph), oh(d.oh()),
        ow(d.ow()), span(d.kw * d.c), vectors(static_cast<int>((span + kLanes - 1) / kLanes)),
        row(vectors * kLanes), kpad((d.k + kLanes - 1) / kLanes * kLanes) {}
  // Floats of packed weights (or of one thread's partial dW): kh x k rows.
  size_t packed() const { return static_cast<size_t>(kh * k * row); }
  // The input row a window's kernel row r reads for output row y, or -1 in the padding.
  int64_t input_row(int64_t y, int64_t r) const {
    const int64_t i = y * sh - ph + r;
    return i >= 0 && i < h ? i : -1;
  }
};

// Tile height (images for backward-data, filters for backward-weights) for a span of V
// vectors: R*V accumulators, V loaded vectors and one broadcast within 31 registers.
constexpr int tile_rows(int v) { return std::min(4, (30 - v) / v); }

// Calls f(std::integral_constant<int, m>) with m = n, for 1 <= n <= N.
template <int N, class F>
void with_rows(int64_t n, F&& f) {
  if constexpr (N > 1)
    if (n < N) return with_rows<N - 1>(n, f);
  f(std::integral_constant<int, N>{});
}

// Calls f(std::integral_constant<int, V>) with V = g.vectors (1..kMaxSpanVectors).
template <class F>
void with_vectors(const Geo& g, F&& f) {
  switch (g.vectors) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    default: return f(std::integral_constant<int, 7>{});
  }
}

#if MNISTCTL_SPAN_X86
#define MNISTCTL_AVX512 __attribute__((target("avx512f")))

// Backward-data, one output pixel of NI images and one kernel row: dxp[i][span] +=
// sum over o of dyp[i][o] * wr[o][span]. `wr`: the packed weights of the kernel row.
template <int V, int NI>
MNISTCTL_AVX512 inline void data_tile(const float* wr, int64_t k, const float* const* dyp, float* const* dxp,
                                      __mmask16 last) {
  __m512 acc[NI][V];
  for (int i = 0; i < NI; ++i)
    for (int v = 0; v < V; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t o = 0; o < k; ++o) {
    __m512 wv[V];
    for (int v = 0; v < V; ++v) {
      wv[v] = _mm512_load_ps(wr + o * V * kLanes + v * kLanes);
      // Keeps the vector in a register: without this GCC folds the load into each of the
      // NI FMAs that use it, and the loads, not the FMAs, bound the loop.
      asm("" : "+v"(wv[v]));
    }
    for (int i = 0; i < NI; ++i) {
      const __m512 b = _mm512_set1_ps(dyp[i][o]);
      for (int v = 0; v < V; ++v) acc[i][v] = _mm512_fmadd_ps(b, wv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < NI; ++i) {
    for (int v = 0; v < V - 1; ++v)
      _mm512_storeu_ps(dxp[i] + v * kLanes, _mm512_add_ps(_mm512_loadu_ps(dxp[i] + v * kLanes), acc[i][v]));
    float* tail = dxp[i] + (V - 1) * kLanes;
    _mm512_mask_storeu_ps(tail, last, _mm512_add_ps(_mm512_maskz_loadu_ps(last, tail), acc[i][V - 1]));
  }
}

// Backward-data for images [i0, i0 + NI), whose dx is zero: every pixel and kernel row. The
// kernel row is the outer loop, so that its packed weights stay in L1.
template <int V, int NI>
MNISTCTL_AVX512 void data_images(const Geo& g, const float* wp, const float* dy, float* dx, int64_t i0) {
  const __mmask16 last = lanes16(g.span - (g.vectors - 1) * kLanes);  // the span's last vector
  for (int64_t r = 0; r < g.kh; ++r) {
    const float* wr = wp + r * g.k * g.row;
    for (int64_t y = 0; y < g.oh; ++y) {
      const int64_t ih = g.input_row(y, r);
      if (ih < 0) continue;
      for (int64_t x = 0; x < g.ow; ++x) {
        const float* dyp[NI];
        float* dxp[NI];
        for (int i = 0; i < NI; ++i) {
          dyp[i] = dy + (((i0 + i) * g.oh + y) * g.ow + x) * g.k;
          dxp[i] = dx + (((i0 + i) * g.h + ih) * g.w + x * g.sw) * g.c;
        }
        data_tile<V, NI>(wr, g.k, dyp, dxp, last);
      }
    }
  }
}

// Backward-weights, NO filters from o0 and one kernel row over `count` pixels: part[o][span]
// += sum over q of dys[q][o0 + o] * xs[q][span]. `xs`, `dys`: each pixel's x span (for the
// kernel row) and dy row, listed first so that this is one plain loop, whose accumulators
// the compiler keeps in registers. `part`: the partial dW of (kernel row, o0), in the
// partial layout (see partial_slot): the span's last vector is read at `tail` = span - 16,
// so that no load reaches past the span. (A masked load there made GCC 12 keep the
// accumulators in memory.)
template <int V, int NO>
MNISTCTL_AVX512 inline void weights_tile(const float* const* xs, const float* const* dys, int64_t count, int64_t o0,
                                         int64_t row, float* part, int64_t tail) {
  __m512 acc[NO][V];
  for (int o = 0; o < NO; ++o)
    for (int v = 0; v < V; ++v) acc[o][v] = _mm512_setzero_ps();
  for (int64_t q = 0; q < count; ++q) {
    const float* xq = xs[q];
    const float* dq = dys[q] + o0;
    __m512 xv[V - 1 > 0 ? V - 1 : 1];
    for (int v = 0; v < V - 1; ++v) xv[v] = _mm512_loadu_ps(xq + v * kLanes);
    const __m512 xl = _mm512_loadu_ps(xq + tail);
    for (int o = 0; o < NO; ++o) {
      const __m512 b = _mm512_set1_ps(dq[o]);
      for (int v = 0; v < V - 1; ++v) acc[o][v] = _mm512_fmadd_ps(b, xv[v], acc[o][v]);
      acc[o][V - 1] = _mm512_fmadd_ps(b, xl, acc[o][V - 1]);
    }
  }
  for (int o = 0; o < NO; ++o)
    for (int v = 0; v < V; ++v) {
      float* p = part + o * row + v * kLanes;
      _mm512_store_ps(p, _mm512_add_ps(_mm512_load_ps(p), acc[o][v]));
    }
}

// Backward-weights for images [first, first + count) into `part`, a group of kGroupImages
// images at a time (their x and dy stay in cache over the kernel rows and filters). `xs`,
// `dys`: room for a group's pixels.
template <int V>
MNISTCTL_AVX512 void weights_images(const Geo& g, const float* x, const float* dy, int64_t first, int64_t count,
                                    float* part, const float** xs, const float** dys) {
  constexpr int NO = tile_rows(V);
  const int64_t tail = g.span - kLanes;
  for (int64_t i0 = first; i0 < first + count; i0 += kGroupImages) {
    const int64_t ni = std::min(kGroupImages, first + count - i0);
    for (int64_t r = 0; r < g.kh; ++r) {
      int64_t m = 0;
      for (int64_t i = i0; i < i0 + ni; ++i)
        for (int64_t y = 0; y < g.oh; ++y) {
          const int64_t ih = g.input_row(y, r);
          if (ih < 0) continue;
          for (int64_t px = 0; px < g.ow; ++px, ++m) {
            xs[m] = x + ((i * g.h + ih) * g.w + px * g.sw) * g.c;
            dys[m] = dy + ((i * g.oh + y) * g.ow + px) * g.k;
          }
        }
      for (int64_t o0 = 0; o0 < g.k; o0 += NO) {
        float* p = part + (r * g.k + o0) * g.row;
        with_rows<NO>(g.k - o0, [&](auto n) { weights_tile<V, decltype(n)::value>(xs, dys, m, o0, g.row, p, tail); });
      }
    }
  }
}
#endif

// Where a partial dW row keeps span position p: vectors 0..V-2 at their place, the last
// vector holding positions [span - 16, span) (those below 16 (V - 1) are also in the
// vector before; both sums are the same products in the same order).
int64_t partial_slot(const Geo& g, int64_t p) {
  const int64_t main = (g.vectors - 1) * kLanes;
  return p < main ? p : main + p - (g.span - kLanes);
}

// The weights KCRS -> packed [r][o][s*c + ci], each row zero-padded to whole vectors.
void pack_weights(const Geo& g, const float* w, float* wp) {
  std::fill(wp, wp + g.packed(), 0.0f);
  for (int64_t o = 0; o < g.k; ++o)
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int64_t r = 0; r < g.kh; ++r)
        for (int64_t s = 0; s < g.kw; ++s)
          wp[(r * g.k + o) * g.row + s * g.c + ci] = w[((o * g.c + ci) * g.kh + r) * g.kw + s];
}

// The kernels exist for the supported shapes only.
void require_supported(const ConvDesc& d) {
  if (!span_conv_supported(d))
    throw RuntimeError(fmt::format("span convolution loops called for an unsupported shape ({} input channels, "
                                   "{}x{} kernel, column padding {}) or without AVX-512F",
                                   d.c, d.kh, d.kw, d.pw));
}

}  // namespace

bool span_conv_supported(const ConvDesc& d) {
  // The kernel must fit the input (oh() and ow() truncate a negative extent to one output):
  // a window row's span then lies inside its input row.
  return MNISTCTL_SPAN_X86 && cpu_has_avx512f() && d.n >= 1 && d.c >= 2 && d.pw == 0 && d.kw >= 1 &&
         d.kh >= 1 && d.kw <= d.w && d.kh <= d.h + 2 * d.ph && d.sh >= 1 && d.sw >= 1 && d.k >= 1 &&
         d.kw * d.c >= kLanes && d.kw * d.c <= kMaxSpanVectors * kLanes;
}

size_t span_conv_scratch_bytes(const ConvDesc& d, int threads) {
  const Geo g(d);
  // The packed weights (backward-data) or, per thread, a partial dW and db.
  const size_t per_thread = g.packed() + static_cast<size_t>(g.kpad);
  return std::max(g.packed(), per_thread * static_cast<size_t>(std::max(threads, 1))) * sizeof(float);
}

#if MNISTCTL_SPAN_X86
void span_conv_backward_data(const ConvDesc& d, const float* dy, const float* w, float* dx, void* scratch,
                             int threads) {
  require_supported(d);
  const Geo g(d);
  auto* wp = static_cast<float*>(scratch);
  pack_weights(g, w, wp);
  const size_t image = static_cast<size_t>(g.h * g.w * g.c);
#pragma omp parallel num_threads(std::max(threads, 1))
  {
    int64_t first, count;
    thread_range(g.n, 1, omp_get_thread_num(), omp_get_num_threads(), &first, &count);
    std::memset(dx + static_cast<size_t>(first) * image, 0, static_cast<size_t>(count) * image * sizeof(float));
    with_vectors(g, [&](auto v) {
      constexpr int V = decltype(v)::value;
      constexpr int NI = tile_rows(V);
      for (int64_t i0 = first; i0 < first + count; i0 += NI)
        with_rows<NI>(first + count - i0, [&](auto m) { data_images<V, decltype(m)::value>(g, wp, dy, dx, i0); });
    });
  }
}

void span_conv_backward_weights(const ConvDesc& d, const float* x, const float* dy, float* dw, float* db,
                                void* scratch, int threads) {
  require_supported(d);
  const Geo g(d);
  const size_t per_thread = g.packed() + static_cast<size_t>(g.kpad);
  auto* base = static_cast<float*>(scratch);
  threads = std::max(threads, 1);
  // Room for each thread's pixel lists (weights_images), made here so that a failed
  // allocation throws on the caller's thread, not inside the parallel region.
  const size_t group = static_cast<size_t>(kGroupImages * g.oh * g.ow);
  std::vector<const float*> lists(2 * group * static_cast<size_t>(threads));
  int used = 1;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
#pragma omp single
    used = got;
    float* part = base + per_thread * static_cast<size_t>(t);
    float* dbp = part + g.packed();
    std::fill(part, part + per_thread, 0.0f);
    int64_t first, count;
    thread_range(g.n, 1, t, got, &first, &count);
    const float** xs = lists.data() + 2 * group * static_cast<size_t>(t);
    with_vectors(g, [&](auto v) { weights_images<decltype(v)::value>(g, x, dy, first, count, part, xs, xs + group); });
    if (db) {
      const float* p = dy + first * g.oh * g.ow * g.k;
      for (int64_t q = 0; q < count * g.oh * g.ow; ++q, p += g.k)
        for (int64_t o = 0; o < g.k; ++o) dbp[o] += p[o];
    }
  }
  // The threads' partial sums of the float at `at` of each thread's part, in thread order.
  auto thread_sum = [&](size_t at) {
    float sum = base[at];
    for (int t = 1; t < used; ++t) sum += base[per_thread * static_cast<size_t>(t) + at];
    return sum;
  };
  for (int64_t o = 0; o < g.k; ++o)
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int64_t r = 0; r < g.kh; ++r)
        for (int64_t s = 0; s < g.kw; ++s)
          dw[((o * g.c + ci) * g.kh + r) * g.kw + s] =
              thread_sum(static_cast<size_t>((r * g.k + o) * g.row + partial_slot(g, s * g.c + ci)));
  if (db)
    for (int64_t o = 0; o < g.k; ++o) db[o] = thread_sum(g.packed() + static_cast<size_t>(o));
}
#else
// Unreachable: span_conv_supported() is false off x86.
void span_conv_backward_data(const ConvDesc& d, const float*, const float*, float*, void*, int) {
  require_supported(d);
}
void span_conv_backward_weights(const ConvDesc& d, const float*, const float*, float*, float*, void*, int) {
  require_supported(d);
}
#endif

}  // namespace mnistctl::cpu
