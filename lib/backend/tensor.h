// Memory handed out by a Backend: float tensors and raw byte buffers.
//
// A Tensor is a shape plus a pointer into the backend's memory (host memory for the
// CPU backends, device memory for CUDA). Copies share the storage; the last one frees
// it through the backend's deleter. `data` is never dereferenced outside the backend
// that made it: host code reads values with Backend::download().
//
// A rank-4 activation (N, C, H, W) is laid out NCHW unless its `layout` says nhwc
// (channels last): the network plan (nn/network.h) asks for nhwc only between the ops of a
// backend that accepts it (Backend::accepts_nhwc), so that its convolutions and poolings
// hand each other their native layout instead of reordering at every op boundary. The
// shape stays (N, C, H, W) either way; views keep the layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/shape.h"

namespace mnistctl {

enum class Layout { nchw, nhwc };

struct Tensor {
  Shape shape;
  Layout layout = Layout::nchw;
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
