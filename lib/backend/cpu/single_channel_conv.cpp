// The single-channel convolution loops of single_channel_conv.h. The vector code is compiled
// for AVX-512F with a target attribute and only called after single_channel_conv_supported(),
// so the rest of the library keeps the baseline ISA. Accumulators, dy and the tap form's
// weights are arrays indexed by template constants only, which the compiler keeps in
// registers; the block form loads the weights per tap from the transposed copy in the
// scratch.
#include "backend/cpu/single_channel_conv.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "backend/cpu/bf16_convert.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/lanes.h"
#include "core/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MNISTCTL_SCC_X86 1
#else
#define MNISTCTL_SCC_X86 0
#endif

namespace mnistctl::cpu {
namespace {

constexpr int64_t kLanes = 16;  // floats in an AVX-512 vector
constexpr int64_t kBlock = 8;   // output pixels per block
constexpr int64_t kMaxMain = 2;  // whole vectors of channels per pixel

// The channels of a pixel: `main` whole vectors, then `rest` (0, 4 or 8) channels, which
// go in a shared vector: the rest of 16 / rest pixels side by side (lane p*rest + c).
struct Split {
  int64_t main, rest;
};
Split split_of(int64_t k) { return {k / kLanes, k % kLanes}; }
bool supported_split(const Split& s) {
  return s.main <= kMaxMain && (s.rest == 0 || s.rest == 4 || s.rest == 8) && (s.main > 0 || s.rest > 0);
}

// The geometry, as plain integers.
struct Geo {
  int64_t h, w, hp, oh, ow, kh, kw, sh, sw, ph, pw, k, taps;
  // Floats per row of the padded image: the windows of a whole number of blocks plus one
  // vector (the shared vectors' loads), in whole vectors, and an odd number of them: with
  // rows a multiple of 128 bytes apart the window's rows crowd into a few L1 sets, and
  // the loops ran up to twice as slow (docs/performance.md, section 6).
  int64_t xw;
  explicit Geo(const ConvDesc& d)
      : h(d.h), w(d.w), hp(d.h + 2 * d.ph), oh(d.oh()), ow(d.ow()), kh(d.kh), kw(d.kw), sh(d.sh), sw(d.sw),
        ph(d.ph), pw(d.pw), k(d.k), taps(d.kh * d.kw) {
    const int64_t blocks = (ow + kBlock - 1) / kBlock;
    const int64_t need = std::max(d.w + 2 * d.pw, blocks * kBlock * sw + kw + kLanes);
    xw = (need + kLanes - 1) / kLanes * kLanes;
    if (xw / kLanes % 2 == 0) xw += kLanes;
  }
  // Floats of a tap's row of the transposed weights (and of partial dW): main vectors, then
  // the shared vector.
  int64_t row() const { return (k / kLanes + 1) * kLanes; }
  // Floats per row of a block's window copy (backward-weights): the block's columns and the
  // shared vectors' loads, in whole vectors.
  int64_t win() const { return (kBlock * sw + kw + kLanes + kLanes - 1) / kLanes * kLanes; }
};

// The scratch: the transposed weights (taps x row) and the bias (row), then per thread the
// padded image, a block of output or dy (kBlock x k, for the last partial block of a row),
// and for backward-weights the partial dW (taps x row) and db (row).
struct Scratch {
  float *wt, *bias, *pad0, *blk0, *part0;
  size_t pad_floats, blk_floats, part_floats;
  Scratch(const Geo& g, void* base, int threads) {
    sizes(g, &pad_floats, &blk_floats, &part_floats);
    auto* p = static_cast<float*>(base);
    wt = p;
    bias = wt + g.taps * g.row();
    pad0 = bias + g.row();
    blk0 = pad0 + pad_floats * static_cast<size_t>(threads);
    part0 = blk0 + blk_floats * static_cast<size_t>(threads);
  }
  // Every size is a whole number of 64-byte lines (row() is), so every part stays aligned.
  static void sizes(const Geo& g, size_t* pad, size_t* blk, size_t* part) {
    *pad = static_cast<size_t>(g.hp * g.xw + kLanes);  // + the last window copy's overreach
    *blk = static_cast<size_t>((kBlock * g.k + kLanes - 1) / kLanes * kLanes);
    *part = static_cast<size_t>((g.taps + 1) * g.row() + g.kh * g.win());
  }
  static size_t bytes(const Geo& g, int threads) {
    size_t pad, blk, part;
    sizes(g, &pad, &blk, &part);
    return (static_cast<size_t>((g.taps + 1) * g.row()) + (pad + blk + part) * static_cast<size_t>(threads)) *
           sizeof(float);
  }
};

// Rounds to bfloat16 as bf16_convert does (the CPU's and oneDNN's conversion: to nearest,
// ties to even, denormals to zero), kept as a float.
float round_bf16(float f) {
  const uint32_t u = static_cast<uint32_t>(f32_to_bf16(f)) << 16;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Which rest channel lane l of the shared vector holds: the block form puts pixel p's
// channel c at lane p*rest + c, the tap form at lane c*(16 / rest) + p (below).
int64_t rest_channel(const Split& s, bool taps, int64_t l) { return taps ? l / (kLanes / s.rest) : l % s.rest; }
int64_t rest_lane(const Split& s, bool taps, int64_t slot, int64_t c) {
  return taps ? c * (kLanes / s.rest) + slot : slot * s.rest + c;
}

// A row of `row` floats per tap from (K, 1, KH, KW) weights: channel c < 16*main at lane c,
// a rest channel at its lanes of the shared vector (the same weight for each of its
// pixels). The bias (t = -1) the same way. bf16-rounded if asked.
void transpose_params(const Geo& g, const Split& s, bool taps, const float* w, const float* b, bool bf16,
                      float* wt, float* bias) {
  const int64_t row = g.row(), base = s.main * kLanes;
  auto place = [&](float* dst, auto value) {
    std::fill(dst, dst + row, 0.0f);
    for (int64_t c = 0; c < base; ++c) dst[c] = value(c);
    if (s.rest)
      for (int64_t l = 0; l < kLanes; ++l) dst[base + l] = value(base + rest_channel(s, taps, l));
  };
  for (int64_t t = 0; t < g.taps; ++t)
    place(wt + t * row, [&](int64_t c) { return bf16 ? round_bf16(w[c * g.taps + t]) : w[c * g.taps + t]; });
  place(bias, [&](int64_t c) { return b ? b[c] : 0.0f; });
}

#if MNISTCTL_SCC_X86
#define MNISTCTL_AVX512 __attribute__((target("avx512f")))

// The same rounding, 16 lanes (a NaN stays the NaN it was).
MNISTCTL_AVX512 inline __m512 round_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(0xffff, u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  r = _mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
  // Zero or denormal (exponent bits zero): the sign's zero.
  const __mmask16 tiny = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_and_epi32(r, tiny, u, _mm512_set1_epi32(static_cast<int>(0x80000000u)));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(_mm512_castsi512_ps(r), nan, v);
}

// Copies image x (h x w) into the interior of the padded buffer, whose border is zero,
// bf16-rounded if asked. Only the columns some output's window reads, so that no loop
// reads a value no window does. (The backward's partial blocks and groups still read,
// for their absent pixels, columns that present pixels read at other taps; they zero
// those inputs, so that an Inf or NaN there never meets an absent pixel's zero dy, which
// would make NaN of a tap that is finite.)
MNISTCTL_AVX512 void pad_image(const Geo& g, const float* x, float* xp, bool bf16) {
  const int64_t used = std::min(g.w, (g.ow - 1) * g.sw + g.kw - g.pw);
  for (int64_t iy = 0; iy < g.h; ++iy) {
    const float* src = x + iy * g.w;
    float* dst = xp + (iy + g.ph) * g.xw + g.pw;
    for (int64_t ix = 0; ix < used; ix += kLanes) {
      const __mmask16 m = lanes16(used - ix);
      const __m512 v = _mm512_maskz_loadu_ps(m, src + ix);
      _mm512_mask_storeu_ps(dst + ix, m, bf16 ? round_bf16(v) : v);
    }
  }
}

// The permutation that spreads the 16 / R pixels of a shared vector: lane l takes the input
// of pixel l / R, which is (l / R) * sw values along the padded row.
template <int R>
MNISTCTL_AVX512 inline __m512i rest_index(int64_t sw) {
  constexpr int64_t r = R ? R : 1;  // R = 0: no shared vector, the index goes unused
  alignas(64) int32_t lanes[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) lanes[l] = static_cast<int32_t>(l / r * sw);
  return _mm512_load_si512(lanes);
}

// A block of kBlock output pixels of one row: y[p][0:k] = bias + sum over taps of x_t(p) * W_t.
// `xr`: the padded input at the block's first window; `y`: kBlock * k floats.
template <int A, int R>
MNISTCTL_AVX512 inline void forward_block(const Geo& g, const float* xr, const float* wt, const float* bias,
                                          __m512i idx, float* y) {
  constexpr int NT = R ? kBlock * R / kLanes : 0;  // shared vectors in the block
  constexpr int G = R ? kLanes / R : 1;            // pixels per shared vector
  const int64_t row = g.row();
  __m512 acc[kBlock][A ? A : 1];
  __m512 rest[NT ? NT : 1];
  for (int a = 0; a < A; ++a)
    for (int p = 0; p < kBlock; ++p) acc[p][a] = _mm512_load_ps(bias + a * kLanes);
  for (int q = 0; q < NT; ++q) rest[q] = _mm512_load_ps(bias + A * kLanes);
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    const float* xrow = xr + ky * g.xw;
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      const float* wv = wt + (ky * g.kw + kx) * row;
      if constexpr (A > 0)
        for (int p = 0; p < kBlock; ++p) {
          const __m512 xb = _mm512_set1_ps(xrow[p * g.sw + kx]);
          for (int a = 0; a < A; ++a) acc[p][a] = _mm512_fmadd_ps(xb, _mm512_load_ps(wv + a * kLanes), acc[p][a]);
        }
      if (NT) {
        const __m512 wr = _mm512_load_ps(wv + A * kLanes);
        for (int q = 0; q < NT; ++q) {
          const __m512 xs = _mm512_maskz_permutexvar_ps(0xffff, idx, _mm512_loadu_ps(xrow + q * G * g.sw + kx));
          rest[q] = _mm512_fmadd_ps(xs, wr, rest[q]);
        }
      }
    }
  }
  for (int p = 0; p < kBlock; ++p)
    for (int a = 0; a < A; ++a) _mm512_storeu_ps(y + p * g.k + a * kLanes, acc[p][a]);
  if (NT) {
    alignas(64) float lanes[kLanes];
    for (int q = 0; q < NT; ++q) {
      _mm512_store_ps(lanes, rest[q]);
      for (int i = 0; i < G; ++i) std::memcpy(y + (q * G + i) * g.k + A * kLanes, lanes + i * R, R * sizeof(float));
    }
  }
}

// One image, row by row, block by block. A row's last, partial block goes through `blk`:
// the forward writes the whole block there and copies out the row's pixels; the backward
// copies them in after zeros (absent pixels add nothing).
template <int A, int R>
MNISTCTL_AVX512 void forward_image(const Geo& g, const float* xp, const float* wt, const float* bias, float* y,
                                   float* blk) {
  const __m512i idx = rest_index<R>(g.sw);
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* xr = xp + oy * g.sh * g.xw;
    float* yr = y + oy * g.ow * g.k;
    for (int64_t ox = 0; ox < g.ow; ox += kBlock) {
      const int64_t pixels = std::min(kBlock, g.ow - ox);
      if (pixels == kBlock) {
        forward_block<A, R>(g, xr + ox * g.sw, wt, bias, idx, yr + ox * g.k);
      } else {
        forward_block<A, R>(g, xr + ox * g.sw, wt, bias, idx, blk);
        std::memcpy(yr + ox * g.k, blk, static_cast<size_t>(pixels * g.k) * sizeof(float));
      }
    }
  }
}

// A block's contribution to the partial dW (taps x row) and db (row): the block's dy stays
// in registers (the rest channels packed as the shared vectors) while every tap's row of
// the partial dW is updated in turn. db sums the raw dy, dW the bf16-rounded one in bf16.
// (Keeping a kernel row's accumulators in registers over a whole row instead, with dy
// reloaded per kernel row, measured slower.)
template <int A, int R, bool Partial>
MNISTCTL_AVX512 inline void backward_block(const Geo& g, const float* xr, int64_t stride, const float* dy,
                                           float* part, float* part_db, __m512i idx, bool bf16, int64_t pixels) {
  constexpr int NT = R ? kBlock * R / kLanes : 0;
  constexpr int G = R ? kLanes / R : 1;
  const int64_t row = g.row();
  __m512 d[kBlock][A ? A : 1];
  __m512 dr[NT ? NT : 1];
  for (int p = 0; p < kBlock; ++p)
    for (int a = 0; a < A; ++a) d[p][a] = _mm512_loadu_ps(dy + p * g.k + a * kLanes);
  // The lanes of each shared vector whose pixel is in the block.
  __mmask16 present[NT ? NT : 1];
  for (int q = 0; q < NT; ++q)
    present[q] = Partial ? lanes16(std::clamp<int64_t>((pixels - q * G) * R, 0, kLanes)) : __mmask16{0xffff};
  for (int q = 0; q < NT; ++q) {
    alignas(64) float lanes[kLanes];
    for (int i = 0; i < G; ++i) std::memcpy(lanes + i * R, dy + (q * G + i) * g.k + A * kLanes, R * sizeof(float));
    dr[q] = _mm512_load_ps(lanes);
  }
  for (int a = 0; a < A; ++a) {
    __m512 s = _mm512_load_ps(part_db + a * kLanes);
    for (int p = 0; p < kBlock; ++p) s = _mm512_add_ps(s, d[p][a]);
    _mm512_store_ps(part_db + a * kLanes, s);
  }
  if (NT) {
    __m512 s = _mm512_load_ps(part_db + A * kLanes);
    for (int q = 0; q < NT; ++q) s = _mm512_add_ps(s, dr[q]);
    _mm512_store_ps(part_db + A * kLanes, s);
  }
  if (bf16) {
    for (int p = 0; p < kBlock; ++p)
      for (int a = 0; a < A; ++a) d[p][a] = round_bf16(d[p][a]);
    for (int q = 0; q < NT; ++q) dr[q] = round_bf16(dr[q]);
  }
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    const float* xrow = xr + ky * stride;
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      float* pt = part + (ky * g.kw + kx) * row;
      for (int a = 0; a < A; ++a) {
        __m512 acc = _mm512_load_ps(pt + a * kLanes);
        for (int p = 0; p < kBlock; ++p) {
          // A partial block's absent pixels (zero dy) multiply zero, not their inputs.
          const float xv = !Partial || p < pixels ? xrow[p * g.sw + kx] : 0.0f;
          acc = _mm512_fmadd_ps(_mm512_set1_ps(xv), d[p][a], acc);
        }
        _mm512_store_ps(pt + a * kLanes, acc);
      }
      if (NT) {
        __m512 acc = _mm512_load_ps(pt + A * kLanes);
        for (int q = 0; q < NT; ++q) {
          const __m512 xs = _mm512_maskz_permutexvar_ps(present[q], idx, _mm512_loadu_ps(xrow + q * G * g.sw + kx));
          acc = _mm512_fmadd_ps(xs, dr[q], acc);
        }
        _mm512_store_ps(pt + A * kLanes, acc);
      }
    }
  }
}

// Copies a block's input window (kh rows of win() floats) next to the partial sums.
MNISTCTL_AVX512 inline const float* window(const Geo& g, const float* xr, float* win) {
  const int64_t w = g.win();
  for (int64_t ky = 0; ky < g.kh; ++ky)
    for (int64_t i = 0; i < w; i += kLanes) _mm512_store_ps(win + ky * w + i, _mm512_loadu_ps(xr + ky * g.xw + i));
  return win;
}

// The backward's image loop (see forward_image).
template <int A, int R>
MNISTCTL_AVX512 void backward_image(const Geo& g, const float* xp, const float* dy, float* part, float* part_db,
                                    float* blk, bool bf16) {
  const __m512i idx = rest_index<R>(g.sw);
  float* win = part + (g.taps + 1) * g.row();
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* xr = xp + oy * g.sh * g.xw;
    const float* dr = dy + oy * g.ow * g.k;
    for (int64_t ox = 0; ox < g.ow; ox += kBlock) {
      const int64_t pixels = std::min(kBlock, g.ow - ox);
      if (pixels == kBlock) {
        backward_block<A, R, false>(g, window(g, xr + ox * g.sw, win), g.win(), dr + ox * g.k, part, part_db, idx,
                                    bf16, kBlock);
      } else {
        std::fill(blk, blk + kBlock * g.k, 0.0f);
        std::memcpy(blk, dr + ox * g.k, static_cast<size_t>(pixels * g.k) * sizeof(float));
        backward_block<A, R, true>(g, window(g, xr + ox * g.sw, win), g.win(), blk, part, part_db, idx, bf16,
                                   pixels);
      }
    }
  }
}

using ForwardFn = void (*)(const Geo&, const float*, const float*, const float*, float*, float*);
using BackwardFn = void (*)(const Geo&, const float*, const float*, float*, float*, float*, bool);
template <int A>
std::pair<ForwardFn, BackwardFn> kernels_for_rest(int64_t rest) {
  if (rest == 4) return {forward_image<A, 4>, backward_image<A, 4>};
  if (rest == 8) return {forward_image<A, 8>, backward_image<A, 8>};
  if constexpr (A > 0) return {forward_image<A, 0>, backward_image<A, 0>};
  return {nullptr, nullptr};
}
std::pair<ForwardFn, BackwardFn> kernels(const Split& s) {
  if (s.main == 0) return kernels_for_rest<0>(s.rest);
  if (s.main == 1) return kernels_for_rest<1>(s.rest);
  return kernels_for_rest<2>(s.rest);
}

// ---- the tap form ------------------------------------------------------------------------
// For a 5x5 or 3x3 kernel at column stride 1 (LeNet's conv1), a vector of channels keeps all
// its taps in registers: the forward holds the taps' weights (25 vectors) and runs blocks of
// kTapPixels output pixels, one broadcast input and one FMA per tap and pixel; the
// backward-weights holds the taps' partial dW (25 accumulators, independent chains) and
// takes one output pixel at a time: one dy load, then one broadcast input and one FMA per
// tap. Nothing is reloaded per block, which is what bounds the block form. The shared vector
// holds G = 16 / rest pixels with channel c of pixel j at lane c*G + j, so that a tap's
// input is one broadcast of G consecutive values of the padded row (vbroadcastf32x4 or
// vbroadcastsd, a load, no permute).
constexpr int kTapPixels = 6;  // forward: pixels per block (25 weights + 6 sums in registers)
constexpr int kTapGroups = 6;  // forward: shared vectors per block

bool tap_form(const Geo& g) {
  const int64_t rest = g.k % kLanes;
  return g.sw == 1 && g.kh == g.kw && (g.kh == 5 || g.kh == 3) && (rest == 0 || g.ow >= kLanes / rest);
}

// The same pointer, opaque to the compiler. GCC 12 otherwise sees that pixel ox + 1 reads
// the inputs of pixel ox one tap to the left, keeps them in registers from one pixel to
// the next (spilling the partial sums), and broadcasts them from a register, which takes an
// FMA port; with the pointer opaque, each broadcast is a load (the FMA's memory operand).
MNISTCTL_AVX512 inline const float* opaque(const float* p) {
  asm("" : "+r"(p));
  return p;
}

// The G = 16 / R values from x, each in the lanes c*G + j of its pixel j. (The maskz forms
// here and below, with every lane set, are the plain instructions without GCC 12's
// spurious uninitialized-value warning.)
template <int R>
MNISTCTL_AVX512 inline __m512 broadcast_pixels(const float* x) {
  if constexpr (R == 4) return _mm512_maskz_broadcast_f32x4(0xffff, _mm_loadu_ps(x));
  return _mm512_castpd_ps(
      _mm512_maskz_broadcastsd_pd(0xff, _mm_castsi128_pd(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x)))));
}
// The same with only the lanes in `keep` (the others zero).
template <int R>
MNISTCTL_AVX512 inline __m512 broadcast_pixels(const float* x, __mmask16 keep) {
  const __m512 v = broadcast_pixels<R>(x);
  return keep == 0xffff ? v : _mm512_maskz_mov_ps(keep, v);
}
// The lanes of the shared vector whose pixel (lane c*G + j: pixel j) is below `present`.
template <int R>
MNISTCTL_AVX512 inline __mmask16 tap_lanes_present(int64_t present) {
  __mmask16 keep = 0;
  for (int l = 0; l < kLanes; ++l)
    if (l % (kLanes / R) < present) keep = static_cast<__mmask16>(keep | (1u << l));
  return keep;
}

// Lane j*R + c from lane c*G + j (to_tap = false), or the other way round.
template <int R>
MNISTCTL_AVX512 inline __m512i rest_order(bool to_tap) {
  constexpr int G = kLanes / R;
  alignas(64) int32_t lanes[kLanes];
  for (int c = 0; c < R; ++c)
    for (int j = 0; j < G; ++j) {
      if (to_tap) lanes[c * G + j] = j * R + c;
      else lanes[j * R + c] = c * G + j;
    }
  return _mm512_load_si512(lanes);
}
template <int R>
MNISTCTL_AVX512 inline __mmask16 pixel_mask(int j) {
  return static_cast<__mmask16>(((1u << R) - 1u) << (j * R));
}

// Forward, P pixels from column ox of the row at x (padded), one vector of channels: y at
// pixel ox of the output row, w the taps' weights of that vector.
template <int KH, int KW, int P>
MNISTCTL_AVX512 inline void tap_forward_pixels(const Geo& g, const float* x, const __m512* w, const float* bias,
                                               float* y) {
  __m512 acc[P];
  for (int p = 0; p < P; ++p) acc[p] = _mm512_load_ps(bias);
  for (int ky = 0; ky < KH; ++ky)
    for (int kx = 0; kx < KW; ++kx)
      for (int p = 0; p < P; ++p)
        acc[p] = _mm512_fmadd_ps(_mm512_set1_ps(x[ky * g.xw + p + kx]), w[ky * KW + kx], acc[p]);
  for (int p = 0; p < P; ++p) _mm512_storeu_ps(y + p * g.k, acc[p]);
}

// Forward, Q shared vectors (Q * G pixels) from column ox of the row at x: y is the output
// row at the first rest channel.
template <int KH, int KW, int R, int Q>
MNISTCTL_AVX512 inline void tap_forward_groups(const Geo& g, const float* x, int64_t ox, const __m512* w,
                                               const float* bias, __m512i order, float* y) {
  constexpr int G = kLanes / R;
  __m512 acc[Q];
  for (int q = 0; q < Q; ++q) acc[q] = _mm512_load_ps(bias);
  for (int ky = 0; ky < KH; ++ky)
    for (int kx = 0; kx < KW; ++kx)
      for (int q = 0; q < Q; ++q)
        acc[q] = _mm512_fmadd_ps(broadcast_pixels<R>(x + ky * g.xw + ox + q * G + kx), w[ky * KW + kx], acc[q]);
  for (int q = 0; q < Q; ++q) {
    const __m512 v = _mm512_maskz_permutexvar_ps(0xffff, order, acc[q]);
    for (int j = 0; j < G; ++j) _mm512_mask_storeu_ps(y + (ox + q * G + j) * g.k - j * R, pixel_mask<R>(j), v);
  }
}

// One image: row by row, each whole vector of channels, then the shared vector. A row's
// last shared vectors start at ow - G at the latest, rewriting the same values.
template <int KH, int KW, int R>
MNISTCTL_AVX512 void tap_forward_image(const Geo& g, const float* xp, const float* wt, const float* bias, float* y) {
  constexpr int T = KH * KW, G = R ? kLanes / R : 1;
  const int64_t row = g.row(), main = g.k / kLanes;
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* xr = xp + oy * g.sh * g.xw;
    float* yr = y + oy * g.ow * g.k;
    for (int64_t a = 0; a < main; ++a) {
      __m512 w[T];
      for (int t = 0; t < T; ++t) w[t] = _mm512_load_ps(wt + t * row + a * kLanes);
      int64_t ox = 0;
      for (; ox + kTapPixels <= g.ow; ox += kTapPixels)
        tap_forward_pixels<KH, KW, kTapPixels>(g, opaque(xr + ox), w, bias + a * kLanes, yr + ox * g.k + a * kLanes);
      for (; ox < g.ow; ++ox)
        tap_forward_pixels<KH, KW, 1>(g, opaque(xr + ox), w, bias + a * kLanes, yr + ox * g.k + a * kLanes);
    }
    if constexpr (R > 0) {
      const __m512i order = rest_order<R>(false);
      __m512 w[T];
      for (int t = 0; t < T; ++t) w[t] = _mm512_load_ps(wt + t * row + main * kLanes);
      float* yc = yr + main * kLanes;
      int64_t ox = 0;
      for (; ox + kTapGroups * G <= g.ow; ox += kTapGroups * G)
        tap_forward_groups<KH, KW, R, kTapGroups>(g, opaque(xr), ox, w, bias + main * kLanes, order, yc);
      for (; ox < g.ow; ox += G)
        tap_forward_groups<KH, KW, R, 1>(g, opaque(xr), std::min(ox, g.ow - G), w, bias + main * kLanes, order, yc);
    }
  }
}

// The shared vector's dy of pixels ox .. ox + G - 1 (dy at pixel ox, first rest channel;
// `present` of them exist, the others' lanes are zero) in the tap order. A whole group is
// G plain loads, pixel j's channels at lanes j*R .. j*R + R - 1 of the j-th, blended: none
// reads past the group's last channel.
template <int R>
MNISTCTL_AVX512 inline __m512 rest_dy(const float* dy, int64_t k, int64_t present, __m512i order) {
  constexpr int G = kLanes / R;
  __m512 v;
  if (present >= G) {
    v = _mm512_loadu_ps(dy);
    for (int j = 1; j < G; ++j) v = _mm512_mask_blend_ps(pixel_mask<R>(j), v, _mm512_loadu_ps(dy + j * (k - R)));
  } else {
    v = _mm512_setzero_ps();
    for (int j = 0; j < present; ++j) v = _mm512_mask_loadu_ps(v, pixel_mask<R>(j), dy + j * (k - R));
  }
  return _mm512_maskz_permutexvar_ps(0xffff, order, v);
}

// One step of a backward-weights pass: dy d (raw) of the step's pixels, whose inputs start
// at xo, into the partial sums acc and s. `keep`: the lanes of the pixels present (all but
// in a partial last group, whose absent pixels multiply zero, not their inputs).
template <int KH, int KW, int R, bool BF16>
MNISTCTL_AVX512 inline void tap_backward_step(const Geo& g, const float* xo, __m512 d, __mmask16 keep, __m512* acc,
                                              __m512& s) {
  s = _mm512_add_ps(s, d);
  if constexpr (BF16) d = round_bf16(d);
  for (int ky = 0; ky < KH; ++ky)
    for (int kx = 0; kx < KW; ++kx) {
      const float* x = xo + ky * g.xw + kx;
      __m512 xv;
      if constexpr (R > 0) xv = broadcast_pixels<R>(x, keep);
      else xv = _mm512_set1_ps(*x);
      acc[ky * KW + kx] = _mm512_fmadd_ps(xv, d, acc[ky * KW + kx]);
    }
}

// One pass of backward-weights over an image's pixels for one vector of channels: a whole
// vector of 16 channels (R = 0), one pixel a step, or the shared vector (R = rest), 16 / R
// pixels a step. dy, part (the partial dW, taps x row) and pdb (the partial db) point at
// the vector's first channel. The 25 partial sums stay in registers for the whole image.
template <int KH, int KW, int R, bool BF16>
MNISTCTL_AVX512 inline void tap_backward_pass(const Geo& g, const float* xp, const float* dy, float* part,
                                              float* pdb) {
  constexpr int T = KH * KW, Step = R ? kLanes / R : 1;
  const int64_t row = g.row();
  __m512i order = _mm512_setzero_si512();
  if constexpr (R > 0) order = rest_order<R>(true);
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_load_ps(part + t * row);
  __m512 s = _mm512_load_ps(pdb);
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* xr = xp + oy * g.sh * g.xw;
    const float* dr = dy + oy * g.ow * g.k;
    int64_t ox = 0;
    for (; ox + Step <= g.ow; ox += Step) {
      __m512 d;
      if constexpr (R > 0) d = rest_dy<R>(dr + ox * g.k, g.k, Step, order);
      else d = _mm512_loadu_ps(dr + ox * g.k);
      tap_backward_step<KH, KW, R, BF16>(g, opaque(xr + ox), d, 0xffff, acc, s);
    }
    if constexpr (R > 0)
      if (ox < g.ow) {
        const int64_t present = g.ow - ox;
        const __mmask16 keep = tap_lanes_present<R>(present);
        tap_backward_step<KH, KW, R, BF16>(g, opaque(xr + ox), rest_dy<R>(dr + ox * g.k, g.k, present, order), keep,
                                           acc, s);
      }
  }
  for (int t = 0; t < T; ++t) _mm512_store_ps(part + t * row, acc[t]);
  _mm512_store_ps(pdb, s);
}

// Backward-weights of one image into the partial dW (part, taps x row) and db (pdb): each
// whole vector of channels, then the shared vector.
template <int KH, int KW, int R, bool BF16>
MNISTCTL_AVX512 void tap_backward_image(const Geo& g, const float* xp, const float* dy, float* part, float* pdb) {
  const int64_t main = g.k / kLanes;
  for (int64_t a = 0; a < main; ++a)
    tap_backward_pass<KH, KW, 0, BF16>(g, xp, dy + a * kLanes, part + a * kLanes, pdb + a * kLanes);
  if constexpr (R > 0)
    tap_backward_pass<KH, KW, R, BF16>(g, xp, dy + main * kLanes, part + main * kLanes, pdb + main * kLanes);
}

using TapForwardFn = void (*)(const Geo&, const float*, const float*, const float*, float*);
using TapBackwardFn = void (*)(const Geo&, const float*, const float*, float*, float*);
struct TapKernels {
  TapForwardFn forward;
  TapBackwardFn backward, backward_bf16;
};
template <int K>
TapKernels tap_kernels_for(int64_t rest) {
  if (rest == 4) return {tap_forward_image<K, K, 4>, tap_backward_image<K, K, 4, false>, tap_backward_image<K, K, 4, true>};
  if (rest == 8) return {tap_forward_image<K, K, 8>, tap_backward_image<K, K, 8, false>, tap_backward_image<K, K, 8, true>};
  return {tap_forward_image<K, K, 0>, tap_backward_image<K, K, 0, false>, tap_backward_image<K, K, 0, true>};
}
TapKernels tap_kernels(const Geo& g) {
  return g.kh == 5 ? tap_kernels_for<5>(g.k % kLanes) : tap_kernels_for<3>(g.k % kLanes);
}
#endif  // MNISTCTL_SCC_X86

}  // namespace

bool single_channel_conv_supported(const ConvDesc& d) {
#if MNISTCTL_SCC_X86
  // A shared vector's pixels must sit within one 16-float load of the padded row.
  const Split s = split_of(d.k);
  return cpu_has_avx512f() && d.c == 1 && supported_split(s) && (s.rest == 0 || (kLanes / s.rest - 1) * d.sw < kLanes);
#else
  (void)d;
  return false;
#endif
}

bool single_channel_conv_tap_form(const ConvDesc& d) {
#if MNISTCTL_SCC_X86
  return single_channel_conv_supported(d) && tap_form(Geo(d));
#else
  (void)d;
  return false;
#endif
}

size_t single_channel_conv_scratch_bytes(const ConvDesc& d, int threads) {
  return Scratch::bytes(Geo(d), std::max(1, threads));
}

#if MNISTCTL_SCC_X86
// The kernels exist for the supported shapes only (another filter count has no instance).
static void require_supported(const ConvDesc& d) {
  if (!single_channel_conv_supported(d))
    throw RuntimeError(fmt::format("single-channel convolution loops called for an unsupported shape ({} input "
                                   "channels, {} filters, column stride {})",
                                   d.c, d.k, d.sw));
}

void single_channel_conv_forward(const ConvDesc& d, const float* x, const float* w, const float* b, float* y,
                                 bool bf16, void* scratch, int threads, SingleChannelForm form) {
  require_supported(d);
  const Geo g(d);
  const Split sp = split_of(d.k);
  threads = std::max(1, threads);
  Scratch s(g, scratch, threads);
  const bool taps = form == SingleChannelForm::best && tap_form(g);
  transpose_params(g, sp, taps, w, b, bf16, s.wt, s.bias);
  const ForwardFn run = kernels(sp).first;
  const TapKernels tap = tap_kernels(g);
  const int64_t in_image = g.h * g.w, out_image = g.oh * g.ow * g.k;
#pragma omp parallel num_threads(threads)
  {
    const auto tid = static_cast<size_t>(omp_get_thread_num());
    float* xp = s.pad0 + s.pad_floats * tid;
    std::fill(xp, xp + s.pad_floats, 0.0f);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < d.n; ++n) {
      pad_image(g, x + n * in_image, xp, bf16);
      if (taps) {
        tap.forward(g, xp, s.wt, s.bias, y + n * out_image);
      } else {
        run(g, xp, s.wt, s.bias, y + n * out_image, s.blk0 + s.blk_floats * tid);
      }
    }
  }
}

void single_channel_conv_backward_weights(const ConvDesc& d, const float* x, const float* dy, float* dw,
                                          float* db, bool bf16, void* scratch, int threads, SingleChannelForm form) {
  require_supported(d);
  const Geo g(d);
  const Split sp = split_of(d.k);
  threads = std::max(1, threads);
  Scratch s(g, scratch, threads);
  const bool taps = form == SingleChannelForm::best && tap_form(g);
  const BackwardFn run = kernels(sp).second;
  const TapKernels tap = tap_kernels(g);
  const TapBackwardFn tap_run = bf16 ? tap.backward_bf16 : tap.backward;
  const int64_t in_image = g.h * g.w, out_image = g.oh * g.ow * g.k, row = g.row();
  int used = 1;
#pragma omp parallel num_threads(threads)
  {
    const auto tid = static_cast<size_t>(omp_get_thread_num());
#pragma omp single
    used = omp_get_num_threads();
    float* xp = s.pad0 + s.pad_floats * tid;
    float* part = s.part0 + s.part_floats * tid;
    std::fill(xp, xp + s.pad_floats, 0.0f);
    std::fill(part, part + s.part_floats, 0.0f);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < d.n; ++n) {
      pad_image(g, x + n * in_image, xp, bf16);
      if (taps) {
        tap_run(g, xp, dy + n * out_image, part, part + g.taps * row);
      } else {
        run(g, xp, dy + n * out_image, part, part + g.taps * row, s.blk0 + s.blk_floats * tid, bf16);
      }
    }
  }
  // Thread by thread, then (for a rest channel) pixel slot by pixel slot: a fixed order for
  // a fixed thread count.
  const int64_t base = sp.main * kLanes;
  for (int64_t c = 0; c < g.k; ++c) {
    for (int64_t t = 0; t <= g.taps; ++t) {  // t == taps: db
      float sum = 0.0f;
      for (int i = 0; i < used; ++i) {
        const float* r = s.part0 + s.part_floats * static_cast<size_t>(i) + t * row;
        if (c < base) {
          sum += r[c];
        } else {
          for (int64_t slot = 0; slot < kLanes / sp.rest; ++slot) sum += r[base + rest_lane(sp, taps, slot, c - base)];
        }
      }
      if (t < g.taps) dw[c * g.taps + t] = sum;
      else if (db) db[c] = sum;
    }
  }
}
#else
// Unreachable: single_channel_conv_supported() is false off x86.
void single_channel_conv_forward(const ConvDesc&, const float*, const float*, const float*, float*, bool, void*,
                                 int, SingleChannelForm) {
  std::abort();
}
void single_channel_conv_backward_weights(const ConvDesc&, const float*, const float*, float*, float*, bool, void*,
                                          int, SingleChannelForm) {
  std::abort();
}
#endif

}  // namespace mnistctl::cpu
