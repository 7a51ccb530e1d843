// Tensor shapes: a short list of extents, outermost first (NCHW for images).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace mnistctl {

struct Shape {
  std::vector<int64_t> dims;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : dims(d) {}
  explicit Shape(std::vector<int64_t> d) : dims(std::move(d)) {}

  int rank() const { return static_cast<int>(dims.size()); }
  int64_t operator[](int i) const { return dims[static_cast<size_t>(i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  // Elements per sample: everything but the outermost (batch) extent.
  int64_t per_sample() const { return dims.empty() ? 0 : numel() / dims[0]; }
  bool operator==(const Shape& o) const { return dims == o.dims; }
  bool operator!=(const Shape& o) const { return dims != o.dims; }
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

}  // namespace mnistctl
