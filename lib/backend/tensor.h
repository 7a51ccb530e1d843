// Memory handed out by a Backend: float tensors and raw byte buffers.
//
// A Tensor is a shape plus a pointer into the backend's memory (host memory for the
// CPU backends, device memory for CUDA). Copies share the storage; the last one frees
// it through the backend's deleter. `data` is never dereferenced outside the backend
// that made it: host code reads values with Backend::download().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/shape.h"

namespace mnistctl {

struct Tensor {
  Shape shape;
  float* data = nullptr;
  std::shared_ptr<void> storage;

  int64_t numel() const { return shape.numel(); }
  bool defined() const { return data != nullptr || shape.numel() == 0; }
  // The same memory seen with another shape of equal size (flatten is free).
  Tensor view(const Shape& s) const {
    Tensor t = *this;
    t.shape = s;
    return t;
  }
};

// Untyped device memory: the uint8 dataset, label bytes, index lists, workspaces.
struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  std::shared_ptr<void> storage;
};

}  // namespace mnistctl
