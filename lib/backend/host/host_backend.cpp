// HostBackend: memory and the data path on host memory, shared by the ref and cpu
// backends (see host_backend.h for why they share it).
#include "backend/host/host_backend.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "backend/op_checks.h"
#include "core/error.h"
#include "core/huge_pages.h"

namespace mnistctl {
namespace {

// 64-byte aligned host memory released through the shared_ptr's deleter. aligned_alloc
// wants a size that is a multiple of the alignment, and at least one line. A buffer of half
// a huge page or more (LeNet's conv2 operands are 1.2 MB at batch 100) is placed and sized in
// whole huge pages and advised onto them (core/huge_pages.h): the rounding wastes less than
// the buffer itself.
std::shared_ptr<void> host_alloc(size_t bytes, const std::string& tag) {
  const size_t align = bytes >= kHugePage / 2 ? kHugePage : 64;
  if (bytes > SIZE_MAX - align)
    throw RuntimeError(tag + ": out of memory allocating " + std::to_string(bytes) + " bytes");
  const size_t rounded = std::max(align, (bytes + align - 1) / align * align);
  void* p = std::aligned_alloc(align, rounded);
  if (!p) throw RuntimeError(tag + ": out of memory allocating " + std::to_string(bytes) + " bytes");
  if (align == kHugePage) advise_huge_pages(p, rounded);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

}  // namespace

Tensor HostBackend::empty(const Shape& shape) {
  for (int64_t d : shape.dims)
    if (d < 0) throw RuntimeError(tag_ + ": negative extent in shape " + shape.str());
  Tensor t;
  t.shape = shape;
  t.storage = host_alloc(static_cast<size_t>(shape.numel()) * sizeof(float), tag_);
  t.data = static_cast<float*>(t.storage.get());
  return t;
}

Buffer HostBackend::adopt_bytes(std::vector<uint8_t>&& bytes) {
  auto owner = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  Buffer b;
  b.data = owner->data();
  b.bytes = owner->size();
  b.storage = owner;
  return b;
}

Buffer HostBackend::alloc_bytes(size_t bytes) {
  Buffer b;
  b.bytes = bytes;
  b.storage = host_alloc(bytes, tag_);
  b.data = b.storage.get();
  return b;
}

void HostBackend::fill(Tensor& t, float value) {
  float* p = t.data;
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static) num_threads(threads_) if (threads_ > 1 && n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

void HostBackend::upload(Tensor& dst, const float* host) {
  if (dst.numel()) std::memcpy(dst.data, host, static_cast<size_t>(dst.numel()) * sizeof(float));
}

void HostBackend::download(const Tensor& src, float* host) {
  if (src.numel()) std::memcpy(host, src.data, static_cast<size_t>(src.numel()) * sizeof(float));
}

void HostBackend::upload_bytes(Buffer& dst, const void* host, size_t bytes) {
  if (bytes > dst.bytes)
    throw RuntimeError("upload_bytes: " + std::to_string(bytes) + " bytes into a buffer of " +
                       std::to_string(dst.bytes));
  if (bytes) std::memcpy(dst.data, host, bytes);
}

void HostBackend::copy(const Tensor& src, Tensor& dst) {
  opcheck::same("copy", src, dst);
  if (src.numel()) std::memmove(dst.data, src.data, static_cast<size_t>(src.numel()) * sizeof(float));
}

void HostBackend::gather_batch(const Buffer& images, const Buffer& labels_u8, int64_t sample_size,
                               const Buffer& order, int64_t first, int64_t n, Tensor& x,
                               Tensor& labels) {
  opcheck::positive("gather_batch", sample_size, "sample_size");
  // A sample needs both its image and its label byte.
  const int64_t count = std::min(static_cast<int64_t>(images.bytes) / sample_size,
                                 static_cast<int64_t>(labels_u8.bytes));
  const int64_t order_len = static_cast<int64_t>(order.bytes / sizeof(int32_t));
  if (first < 0 || n < 0 || first + n > order_len)
    throw RuntimeError("gather_batch: rows " + std::to_string(first) + ".." +
                       std::to_string(first + n) + " outside the order list of " +
                       std::to_string(order_len));
  opcheck::numel("gather_batch", "x", x, n * sample_size);
  opcheck::numel("gather_batch", "labels", labels, n);
  const auto* img = static_cast<const uint8_t*>(images.data);
  const auto* lab = static_cast<const uint8_t*>(labels_u8.data);
  const auto* ord = static_cast<const int32_t*>(order.data) + first;
  for (int64_t i = 0; i < n; ++i)  // validate before touching memory
    if (ord[i] < 0 || ord[i] >= count)
      throw RuntimeError("gather_batch: sample index " + std::to_string(ord[i]) +
                         " outside the " + std::to_string(count) + " samples");
  float* xd = x.data;
  float* ld = labels.data;
  // A shuffled epoch reads its images from anywhere in a dataset that does not stay in cache,
  // and the rows are too short for the hardware prefetcher: converted one after another, each
  // row waits for memory in turn. So each thread requests the lines of its rows ahead of
  // converting them: kAhead rows at first, then one more per row converted (a bounded distance,
  // so that a large batch does not push out what it requested before it is read).
  constexpr int64_t kAhead = 64;
  const auto request = [=](int64_t i) {  // by value: GCC 12 dropped the prefetches of a [&] lambda used in the parallel region
    const auto line = [](const uint8_t* p) { return reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63}; };
    const uint8_t* src = img + static_cast<int64_t>(ord[i]) * sample_size;
    for (uintptr_t a = line(src); a <= line(src + sample_size - 1); a += 64)
      __builtin_prefetch(reinterpret_cast<const void*>(a), 0, 3);
  };
#pragma omp parallel num_threads(threads_) if (threads_ > 1 && n * sample_size >= kParallelMin)
  {
    // The rows of a static schedule: a contiguous share per thread.
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
    for (int64_t i = lo; i < std::min(hi, lo + kAhead); ++i) request(i);
    for (int64_t i = lo; i < hi; ++i) {
      if (i + kAhead < hi) request(i + kAhead);
      const uint8_t* src = img + static_cast<int64_t>(ord[i]) * sample_size;
      float* dst = xd + i * sample_size;
      for (int64_t j = 0; j < sample_size; ++j) dst[j] = static_cast<float>(src[j]) / 255.0f;
      ld[i] = static_cast<float>(lab[ord[i]]);
    }
  }
}

}  // namespace mnistctl
