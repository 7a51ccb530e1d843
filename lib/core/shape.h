// Tensor shapes: a short list of extents, outermost first (NCHW for images).
//
// Extents come from input (a YAML config, a checkpoint, an IDX header), so every product is
// checked: one that does not fit in int64 throws a UsageError (exit 2) instead of wrapping
// to a negative size that a memory check would then let through.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"

namespace mnistctl {

// a * b for sizes computed from input; `what` names the quantity in the error.
inline int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
    throw Error(kExitUsage, what + ": size overflows 64 bits (" + std::to_string(a) + " x " + std::to_string(b) + ")");
  return r;
}
inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
    throw Error(kExitUsage, what + ": size overflows 64 bits (" + std::to_string(a) + " + " + std::to_string(b) + ")");
  return r;
}

struct Shape {
  std::vector<int64_t> dims;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : dims(d) {}
  explicit Shape(std::vector<int64_t> d) : dims(std::move(d)) {}

  int rank() const { return static_cast<int>(dims.size()); }
  int64_t operator[](int i) const { return dims[static_cast<size_t>(i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims)
      if (__builtin_mul_overflow(n, d, &n) || d < 0) overflow();
    return n;
  }
  // Elements per sample: everything but the outermost (batch) extent (an empty batch too).
  int64_t per_sample() const {
    int64_t n = 1;
    for (size_t i = 1; i < dims.size(); ++i)
      if (__builtin_mul_overflow(n, dims[i], &n) || dims[i] < 0) overflow();
    return dims.empty() ? 0 : n;
  }
  bool operator==(const Shape& o) const { return dims == o.dims; }
  bool operator!=(const Shape& o) const { return dims != o.dims; }
  [[noreturn]] void overflow() const {
    throw Error(kExitUsage, "shape " + str() + " has more elements than 64 bits can count");
  }
  // "1x28x28"
  std::string str() const {
    std::string s;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (i) s += 'x';
      s += std::to_string(dims[i]);
    }
    return s;
  }
};

// A per-sample shape with the batch extent n in front: batched(100, {1, 28, 28}) is
// 100x1x28x28.
inline Shape batched(int64_t n, const Shape& per_sample) {
  Shape b;
  b.dims.reserve(per_sample.dims.size() + 1);
  b.dims.push_back(n);
  b.dims.insert(b.dims.end(), per_sample.dims.begin(), per_sample.dims.end());
  return b;
}

}  // namespace mnistctl
