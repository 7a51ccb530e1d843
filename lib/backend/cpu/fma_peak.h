// The CPU's arithmetic peak, measured rather than read from a datasheet: every thread runs a
// loop of independent vector multiply-adds on registers only (12 accumulators: more than the
// FMA latency times the FMA ports of current x86 cores, so no instruction waits for another)
// and never touches memory. No kernel can beat that loop, so it bounds the GEMM limit that
// `mnistctl bench` measures and any aim stated in GFLOP/s. The clock is whatever the cores run
// at under that load, as for the real kernels.
#pragma once

namespace mnistctl::cpu {

enum class ProbeIsa {
  avx2_fma,     // 8-lane FP32 fused multiply-add (vfmadd on ymm)
  avx512_fma,   // 16-lane FP32 fused multiply-add (vfmadd on zmm)
  avx512_bf16,  // BF16 dot products into FP32 (vdpbf16ps on zmm: 2 multiply-adds per lane)
};

const char* probe_name(ProbeIsa isa);  // e.g. "AVX-512 FMA"

// Whether this CPU (and the OS, for the vector state) can run the probe's instructions.
bool probe_supported(ProbeIsa isa);

// FLOPs of one loop iteration on one thread (a multiply-add is 2).
double probe_flops_per_iteration(ProbeIsa isa);

// Runs the loop `iters` times on the calling thread from fixed starting values and writes the
// 12 accumulators, lane by lane (12 x 8 or 12 x 16 floats), to `out`: the tests replay the
// same recurrence in scalar code. Returns false, writing nothing, if !probe_supported(isa).
//   FMA:  a = a * 0.999999 + 1e-7 (settles near 0.1: no overflow, no subnormals)
//   BF16: a = a + 1 * 2^-24 + 1 * 2^-24 (the pair of a vdpbf16ps lane)
// a starts at (accumulator + 1) * 1e-3f in every lane. Both are exact in scalar float too: the
// FMA rounds once per step, and 2^-24 steps are exact on values between 1e-3 and 2e-2.
bool run_probe_loop(ProbeIsa isa, long iters, float* out);

// GFLOP/s of `threads` threads running the loop at once: the best of five runs of about 20 ms
// each, after a calibration run. 0 if !probe_supported(isa).
double measure_peak_gflops(ProbeIsa isa, int threads);

}  // namespace mnistctl::cpu
