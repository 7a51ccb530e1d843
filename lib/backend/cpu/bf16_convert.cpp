// The conversions of bf16_convert.h. The vector forms convert 32 floats per instruction
// (vcvtne2ps2bf16), compiled with a target attribute and called only where the CPU has
// AVX-512 BF16; the channels-last transpose reads each channel plane's 32 values with two
// 16-lane gathers (stride c floats), from an image that sits in L1. OpenMP splits the buffer
// into one contiguous range per thread (parallel_ranges.h), or the images.
#include "backend/cpu/bf16_convert.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/lanes.h"
#include "backend/cpu/parallel_ranges.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MNISTCTL_BF16_X86 1
#else
#define MNISTCTL_BF16_X86 0
#endif

namespace mnistctl::cpu {

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint32_t exp = u & 0x7f800000u, man = u & 0x007fffffu;
  if (exp == 0x7f800000u && man != 0) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  if (exp == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);                      // zero, denormal
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

namespace {

void convert_scalar(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

#if MNISTCTL_BF16_X86
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void convert_avx512(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, reinterpret_cast<const __m512i&>(v));
  }
  for (; i + 16 <= n; i += 16) {
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), reinterpret_cast<const __m256i&>(v));
  }
  if (i < n) {
    const __mmask16 m = lanes16(static_cast<int64_t>(n - i));
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
    _mm256_mask_storeu_epi16(dst + i, m, reinterpret_cast<const __m256i&>(v));
  }
}

// One image: dst (c, hw) = bf16(src (hw, c)).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void transpose_image_avx512(const float* src,
                                                                                            uint16_t* dst, int64_t c,
                                                                                            int64_t hw) {
  const __m512i step = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int>(c)));
  const __m512i ahead = _mm512_set1_epi32(static_cast<int>(16 * c));
  for (int64_t ch = 0; ch < c; ++ch) {
    const float* plane = src + ch;
    uint16_t* out = dst + ch * hw;
    int64_t p = 0;
    for (; p + 32 <= hw; p += 32) {
      const __m512i idx = _mm512_add_epi32(step, _mm512_set1_epi32(static_cast<int>(p * c)));
      // (The masked form with a zero source: GCC warns about the unmasked one's own temporary.)
      const __m512 lo = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xffff, idx, plane, 4);
      const __m512 hi = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xffff, _mm512_add_epi32(idx, ahead), plane, 4);
      const __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
      _mm512_storeu_si512(out + p, reinterpret_cast<const __m512i&>(v));
    }
    for (; p < hw; p += 16) {
      const __mmask16 m = lanes16(hw - p);
      const __m512i idx = _mm512_add_epi32(step, _mm512_set1_epi32(static_cast<int>(p * c)));
      const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, plane, 4);
      const __m256bh b = _mm512_cvtneps_pbh(v);
      _mm256_mask_storeu_epi16(out + p, m, reinterpret_cast<const __m256i&>(b));
    }
  }
}
#endif

void transpose_image(const float* src, uint16_t* dst, int64_t c, int64_t hw) {
#if MNISTCTL_BF16_X86
  // The gathers' indices are int32: an image of up to 2^31 floats.
  if (cpu_has_avx512bf16() && hw * c < (int64_t{1} << 31)) return transpose_image_avx512(src, dst, c, hw);
#endif
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t p = 0; p < hw; ++p) dst[ch * hw + p] = f32_to_bf16(src[p * c + ch]);
}

void convert_range(const float* src, uint16_t* dst, size_t n) {
#if MNISTCTL_BF16_X86
  if (cpu_has_avx512bf16()) return convert_avx512(src, dst, n);
#endif
  convert_scalar(src, dst, n);
}

}  // namespace

void f32_to_bf16(const float* src, uint16_t* dst, size_t n, int threads) {
  // Below kPerThread values a thread, entering an OpenMP region costs more than a second
  // thread gives. Ranges in whole cache lines of output (32 bf16).
  constexpr size_t kPerThread = size_t{1} << 15;
  const int t = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), n / kPerThread));
  parallel_ranges(static_cast<int64_t>(n), 32, t, [&](int64_t first, int64_t count) {
    convert_range(src + first, dst + first, static_cast<size_t>(count));
  });
}

void nhwc_to_nchw_bf16(const float* src, uint16_t* dst, int64_t n, int64_t c, int64_t hw, int threads) {
  const int t = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(std::max(threads, 1), n)));
#pragma omp parallel for num_threads(t) schedule(static)
  for (int64_t i = 0; i < n; ++i) transpose_image(src + i * hw * c, dst + i * hw * c, c, hw);
}

}  // namespace mnistctl::cpu
