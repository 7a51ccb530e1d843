// f32 -> bf16 conversion of a dense buffer, for the CPU backend's op boundaries in precision
// bf16 (dnnl_backend.cpp's Arg): where a primitive wants an input in the caller's own plain
// layout and only the data type differs, or in NCHW from the caller's channels-last (the
// AMX plan's colsT source), this replaces oneDNN 2.6's generic reorder, whose jit:uni kernel
// converts far below memory speed (docs/performance.md, section 6).
//
// Rounding is what the CPU's own conversion (vcvtne2ps2bf16) does, and oneDNN's reorder with
// it on a CPU with BF16: to nearest, ties to even; NaN stays a (quiet) NaN; denormal inputs
// become zero of the same sign. The scalar form, for CPUs without AVX-512 BF16, does exactly
// the same (oneDNN's emulated conversion there rounds denormals instead; bf16 training is
// refused on such CPUs anyway).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mnistctl::cpu {

// dst[i] = bf16(src[i]) for i < n, on up to `threads` OpenMP threads (fewer for small n).
// The result does not depend on the thread count.
void f32_to_bf16(const float* src, uint16_t* dst, size_t n, int threads);

// dst (n, c, hw) = bf16(src (n, hw, c)): channels-last to channel planes, converted. Images
// are split over up to `threads` OpenMP threads; the result does not depend on the count.
void nhwc_to_nchw_bf16(const float* src, uint16_t* dst, int64_t n, int64_t c, int64_t hw, int threads);

// The scalar conversion of one value (the reference the tests compare against).
uint16_t f32_to_bf16(float f);

}  // namespace mnistctl::cpu
