// The lane mask of a 16-float (AVX-512) vector that covers the first `left` elements of what
// is left of a row or buffer: all 16 lanes when 16 or more are left, else the low `left`
// ones. One definition for the CPU backend's masked tails (eltwise, pooling, the bf16
// conversion, the single-channel and span convolution loops). A plain integer, which
// converts to __mmask16, so the header needs no intrinsics.
#pragma once

#include <cstdint>

namespace mnistctl::cpu {

// `left` >= 1.
inline uint16_t lanes16(int64_t left) {
  return left >= 16 ? uint16_t{0xffff} : static_cast<uint16_t>((1u << left) - 1u);
}

}  // namespace mnistctl::cpu
