// Whether this CPU has AVX-512F (and BW, BF16), for the CPU backend's own AVX-512 code (the single-channel
// convolution loops, im2col's bf16 permutes, the f32 -> bf16 conversion, tanh and relu, the pooling forward,
// the peak probe) and the tests that must know which of them run: __builtin_cpu_supports, asked once; false off x86.
#pragma once

namespace mnistctl::cpu {

inline bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return yes;
#else
  return false;
#endif
}

// AVX-512BW too (16-bit lanes: im2col's bf16 permutes). cpu_has_avx512f has initialised the
// CPU model by the time the second check runs.
inline bool cpu_has_avx512bw() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = cpu_has_avx512f() && __builtin_cpu_supports("avx512bw") != 0;
  return yes;
#else
  return false;
#endif
}

// AVX-512 BF16 too (vcvtne2ps2bf16: bf16_convert's vector form, compiled for BW and VL as
// well, which every CPU with BF16 has).
inline bool cpu_has_avx512bf16() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = cpu_has_avx512bw() && __builtin_cpu_supports("avx512vl") != 0 &&
                          __builtin_cpu_supports("avx512bf16") != 0;
  return yes;
#else
  return false;
#endif
}

}  // namespace mnistctl::cpu
