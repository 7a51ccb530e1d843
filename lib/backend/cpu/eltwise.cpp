// The loops of eltwise.h: 16 floats per step with a masked tail, compiled with a target
// attribute and called only where the CPU has AVX-512F. OpenMP splits the elements into one
// contiguous range per thread, in whole 64-byte lines (parallel_ranges.h), outside the
// target-attributed code (clang does not give a parallel region's outlined body the attribute).
#include "backend/cpu/eltwise.h"

#include <cstdlib>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/lanes.h"
#include "backend/cpu/parallel_ranges.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MNISTCTL_ELT_X86 1
#else
#define MNISTCTL_ELT_X86 0
#endif

namespace mnistctl::cpu {
namespace {

#if MNISTCTL_ELT_X86
#define MNISTCTL_AVX512 __attribute__((target("avx512f")))

// GCC 12 warns (-Wmaybe-uninitialized) about its own unmasked min, max and rcp14
// intrinsics; their masked forms with every lane selected are the same instructions.
constexpr __mmask16 kAll = 0xffff;

// tanh(x) = x P(x^2) / Q(x^2), the rational approximation Eigen and ONNX Runtime use, on x
// clamped to [-9, 9], with the quotient by a reciprocal estimate and one Newton step rather
// than a division (whose throughput bounded the loop); x itself below |x| = 0.0004, where
// tanh(x) rounds to x or within an ulp of it; +-1 from |x| = 9 (float's tanh is +-1 beyond
// 9.01). NaN stays NaN (the clamp would turn it into 9).
MNISTCTL_AVX512 inline __m512 tanh16(__m512 x) {
  const __m512 c = _mm512_mask_max_ps(x, kAll, _mm512_mask_min_ps(x, kAll, x, _mm512_set1_ps(9.0f)),
                                      _mm512_set1_ps(-9.0f));
  const __m512 z = _mm512_mul_ps(c, c);
  __m512 p = _mm512_set1_ps(-2.76076847742355e-16f);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.00018790482477e-13f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-8.60467152213735e-11f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(5.12229709037114e-08f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.48572235717979e-05f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(6.37261928875436e-04f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(4.89352455891786e-03f));
  p = _mm512_mul_ps(p, c);
  __m512 q = _mm512_set1_ps(1.19825839466702e-06f);
  q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(1.18534705686654e-04f));
  q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(2.26843463243900e-03f));
  q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(4.89352518554385e-03f));
  const __m512 r0 = _mm512_mask_rcp14_ps(q, kAll, q);
  const __m512 r1 = _mm512_mul_ps(r0, _mm512_fnmadd_ps(q, r0, _mm512_set1_ps(2.0f)));
  __m512 r = _mm512_mul_ps(p, r1);
  const __m512 ax = _mm512_abs_ps(x);
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.0004f), _CMP_LT_OQ), x);
  const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(  // +-1 with x's sign
      _mm512_castps_si512(_mm512_set1_ps(1.0f)),
      _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u)))));
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(ax, _mm512_set1_ps(9.0f), _CMP_GE_OQ), one);
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// (Plain loops below, not lambdas: a lambda does not get its enclosing function's target
// attribute.)

MNISTCTL_AVX512 void forward_range(ActType a, const float* x, float* y, int64_t n) {
  if (a == ActType::tanh) {
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = lanes16(n - i);
      _mm512_mask_storeu_ps(y + i, m, tanh16(_mm512_maskz_loadu_ps(m, x + i)));
    }
    return;
  }
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v));
  }
}

MNISTCTL_AVX512 void backward_range(ActType a, const float* y, const float* dy, float* dx, int64_t n) {
  if (a == ActType::tanh) {
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = lanes16(n - i);
      const __m512 v = _mm512_maskz_loadu_ps(m, y + i);
      const __m512 g = _mm512_fnmadd_ps(v, v, _mm512_set1_ps(1.0f));  // 1 - y*y, one rounding
      _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), g));
    }
    return;
  }
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    const __mmask16 pos = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y + i), _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 g = _mm512_maskz_mov_ps(pos, _mm512_set1_ps(1.0f));  // f'(x): 1 or 0, as the reference's
    _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), g));
  }
}
#endif  // MNISTCTL_ELT_X86

}  // namespace

bool eltwise_supported(ActType a) {
  return MNISTCTL_ELT_X86 && cpu_has_avx512f() && (a == ActType::tanh || a == ActType::relu);
}

#if MNISTCTL_ELT_X86
void eltwise_forward(ActType a, const float* x, float* y, int64_t n, int threads) {
  // Ranges in whole 64-byte lines (16 floats).
  parallel_ranges(n, 16, threads, [&](int64_t first, int64_t count) { forward_range(a, x + first, y + first, count); });
}
void eltwise_backward(ActType a, const float* y, const float* dy, float* dx, int64_t n, int threads) {
  parallel_ranges(n, 16, threads,
                  [&](int64_t first, int64_t count) { backward_range(a, y + first, dy + first, dx + first, count); });
}
#else
// Unreachable: eltwise_supported() is false off x86.
void eltwise_forward(ActType, const float*, float*, int64_t, int) { std::abort(); }
void eltwise_backward(ActType, const float*, const float*, float*, int64_t, int) { std::abort(); }
#endif

}  // namespace mnistctl::cpu
