// The conversion of bf16_convert.h. The vector form converts 32 floats per instruction
// (vcvtne2ps2bf16), compiled with a target attribute and called only where the CPU has
// AVX-512 BF16; OpenMP splits the buffer into one contiguous range per thread.
#include "backend/cpu/bf16_convert.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_features.h"

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
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
    _mm256_mask_storeu_epi16(dst + i, m, reinterpret_cast<const __m256i&>(v));
  }
}
#endif

void convert_range(const float* src, uint16_t* dst, size_t n) {
#if MNISTCTL_BF16_X86
  if (cpu_has_avx512bf16()) return convert_avx512(src, dst, n);
#endif
  convert_scalar(src, dst, n);
}

}  // namespace

void f32_to_bf16(const float* src, uint16_t* dst, size_t n, int threads) {
  // Below this, entering an OpenMP region costs more than a second thread gives.
  constexpr size_t kPerThread = size_t{1} << 15;
  const int t = static_cast<int>(std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(threads, 1)),
                                                                       n / kPerThread)));
  if (t == 1) return convert_range(src, dst, n);
  // Ranges in whole cache lines of output (32 bf16), so no two threads write one line.
  const size_t lines = (n + 31) / 32, per = (lines + static_cast<size_t>(t) - 1) / static_cast<size_t>(t) * 32;
#pragma omp parallel num_threads(t)
  {
    const size_t first = std::min(n, per * static_cast<size_t>(omp_get_thread_num()));
    const size_t last = std::min(n, first + per);
    convert_range(src + first, dst + first, last - first);
  }
}

}  // namespace mnistctl::cpu
