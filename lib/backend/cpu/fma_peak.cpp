// The register-only multiply-add loops of fma_peak.h. Each loop is compiled for its ISA with
// a target attribute and only called after probe_supported(), so the rest of the library keeps
// the baseline ISA. The 12 accumulators are separate variables so that the compiler keeps
// them in registers (an array spilled them to the stack on every iteration). On other
// architectures than x86 there is no probe (probe_supported is false).
#include "backend/cpu/fma_peak.h"

#include "backend/cpu/cpu_features.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MNISTCTL_PROBE_X86 1
#else
#define MNISTCTL_PROBE_X86 0
#endif

namespace mnistctl::cpu {
namespace {

#if MNISTCTL_PROBE_X86
constexpr float kStart = 1e-3f, kMul = 0.999999f, kAdd = 1e-7f;
constexpr uint16_t kBf16One = 0x3f80, kBf16Tiny = 0x3380;  // 1 and 2^-24 in bfloat16

#define MNISTCTL_PROBE_BODY(SET1, STORE, STEP, LANES)                                              \
  auto a0 = SET1(1 * kStart), a1 = SET1(2 * kStart), a2 = SET1(3 * kStart), a3 = SET1(4 * kStart),           \
       a4 = SET1(5 * kStart), a5 = SET1(6 * kStart), a6 = SET1(7 * kStart), a7 = SET1(8 * kStart),           \
       a8 = SET1(9 * kStart), a9 = SET1(10 * kStart), a10 = SET1(11 * kStart), a11 = SET1(12 * kStart);      \
  for (long i = 0; i < iters; ++i) {                                                               \
    a0 = STEP(a0); a1 = STEP(a1); a2 = STEP(a2); a3 = STEP(a3); a4 = STEP(a4); a5 = STEP(a5);      \
    a6 = STEP(a6); a7 = STEP(a7); a8 = STEP(a8); a9 = STEP(a9); a10 = STEP(a10); a11 = STEP(a11);  \
  }                                                                                                \
  STORE(out + 0 * LANES, a0); STORE(out + 1 * LANES, a1); STORE(out + 2 * LANES, a2);              \
  STORE(out + 3 * LANES, a3); STORE(out + 4 * LANES, a4); STORE(out + 5 * LANES, a5);              \
  STORE(out + 6 * LANES, a6); STORE(out + 7 * LANES, a7); STORE(out + 8 * LANES, a8);              \
  STORE(out + 9 * LANES, a9); STORE(out + 10 * LANES, a10); STORE(out + 11 * LANES, a11)

__attribute__((target("avx2,fma"))) void loop_avx2(long iters, float* out) {
  const __m256 m = _mm256_set1_ps(kMul), c = _mm256_set1_ps(kAdd);
#define MNISTCTL_STEP(a) _mm256_fmadd_ps(a, m, c)
  MNISTCTL_PROBE_BODY(_mm256_set1_ps, _mm256_storeu_ps, MNISTCTL_STEP, 8);
#undef MNISTCTL_STEP
}

__attribute__((target("avx512f"))) void loop_avx512(long iters, float* out) {
  const __m512 m = _mm512_set1_ps(kMul), c = _mm512_set1_ps(kAdd);
#define MNISTCTL_STEP(a) _mm512_fmadd_ps(a, m, c)
  MNISTCTL_PROBE_BODY(_mm512_set1_ps, _mm512_storeu_ps, MNISTCTL_STEP, 16);
#undef MNISTCTL_STEP
}

__attribute__((target("avx512f,avx512bf16"))) void loop_avx512_bf16(long iters, float* out) {
  const __m512bh x = (__m512bh)_mm512_set1_epi16(static_cast<short>(kBf16One));
  const __m512bh y = (__m512bh)_mm512_set1_epi16(static_cast<short>(kBf16Tiny));
#define MNISTCTL_STEP(a) _mm512_dpbf16_ps(a, x, y)
  MNISTCTL_PROBE_BODY(_mm512_set1_ps, _mm512_storeu_ps, MNISTCTL_STEP, 16);
#undef MNISTCTL_STEP
}

#undef MNISTCTL_PROBE_BODY
#endif

// The loop for `isa` on the calling thread; the caller has checked probe_supported.
void run_loop(ProbeIsa isa, long iters, float* out) {
#if MNISTCTL_PROBE_X86
  switch (isa) {
    case ProbeIsa::avx2_fma: loop_avx2(iters, out); break;
    case ProbeIsa::avx512_fma: loop_avx512(iters, out); break;
    case ProbeIsa::avx512_bf16: loop_avx512_bf16(iters, out); break;
  }
#else
  (void)isa, (void)iters, (void)out;
#endif
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Seconds for up to `threads` threads to run the loop `iters` times each, at once; `ran`
// gets how many threads the runtime really gave the region (OMP_DYNAMIC, OMP_THREAD_LIMIT).
double time_loops(ProbeIsa isa, long iters, int threads, int& ran) {
  std::vector<float> sink(static_cast<size_t>(threads) * 12 * 16);
  std::atomic<int> n{0};
  const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
  {
    if (omp_get_thread_num() == 0) n = omp_get_num_threads();
    run_loop(isa, iters, sink.data() + static_cast<size_t>(omp_get_thread_num()) * 12 * 16);
  }
  ran = n;
  return seconds_since(t0);
}

}  // namespace

const char* probe_name(ProbeIsa isa) {
  switch (isa) {
    case ProbeIsa::avx2_fma: return "AVX2 FMA";
    case ProbeIsa::avx512_fma: return "AVX-512 FMA";
    case ProbeIsa::avx512_bf16: return "AVX-512 BF16 dot-product";
  }
  return "?";
}

bool probe_supported(ProbeIsa isa) {
#if MNISTCTL_PROBE_X86
  __builtin_cpu_init();
  switch (isa) {
    case ProbeIsa::avx2_fma: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case ProbeIsa::avx512_fma: return cpu_has_avx512f();
    case ProbeIsa::avx512_bf16: return cpu_has_avx512bf16();
  }
#else
  (void)isa;
#endif
  return false;
}

double probe_flops_per_iteration(ProbeIsa isa) {
  switch (isa) {
    case ProbeIsa::avx2_fma: return 12 * 8 * 2;
    case ProbeIsa::avx512_fma: return 12 * 16 * 2;
    case ProbeIsa::avx512_bf16: return 12 * 16 * 2 * 2;
  }
  return 0;
}

bool run_probe_loop(ProbeIsa isa, long iters, float* out) {
  if (!probe_supported(isa)) return false;
  run_loop(isa, iters, out);
  return true;
}

double measure_peak_gflops(ProbeIsa isa, int threads) {
  if (!probe_supported(isa) || threads < 1) return 0;
  // Calibrate to about 20 ms a run, enough to dwarf the parallel region's start.
  constexpr long kCalibration = 100000;
  int ran = 0;
  const double t = std::max(time_loops(isa, kCalibration, threads, ran), 1e-6);
  const long iters = std::clamp(static_cast<long>(kCalibration * 0.02 / t), kCalibration, 2000 * kCalibration);
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    const double s = time_loops(isa, iters, threads, ran);
    if (s > 0) best = std::max(best, probe_flops_per_iteration(isa) * iters * ran / s / 1e9);
  }
  return best;
}

}  // namespace mnistctl::cpu
