// Checked size arithmetic for every extent, element or byte count computed from input
// (configs, IDX headers, checkpoints): an overflow is a SizeOverflow (exit 2) rather than a
// wrapped, negative or tiny size that an allocation or a memory check would then trust.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"

namespace mnistctl {

// A size computed from input does not fit in 64 bits. Callers that know the file, line or
// layer catch it and rethrow with that context; uncaught it still exits 2 with its text.
class SizeOverflow : public Error {
 public:
  explicit SizeOverflow(const std::string& what) : Error(kExitUsage, what) {}
};

// a * b, or SizeOverflow naming `what` (for example "shape 4096x4096x...").
inline int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw SizeOverflow(what + ": size " + std::to_string(a) + " x " + std::to_string(b) +
                       " overflows 64 bits");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw SizeOverflow(what + ": size " + std::to_string(a) + " + " + std::to_string(b) +
                       " overflows 64 bits");
  return r;
}

}  // namespace mnistctl
