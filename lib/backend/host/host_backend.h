// HostBackend: the part of a Backend that is the same for every backend whose memory is
// plain host memory (ref and cpu): allocation, fill, the copies in and out, and the data
// path's gather_batch. RefBackend and DnnlBackend derive from it and add the numeric ops.
//
// Why one base: these ops move bytes and do no arithmetic that a backend could do its own
// way (x = byte / 255 is one float division either way), so two copies would only be two
// places to fix. The loops are OpenMP loops with static schedules over the backend's
// thread count: the cpu backend passes its pool size; the ref backend passes 1, which
// turns the OpenMP regions off (their `if` clause), so for the reference they stay plain
// serial loops. Nothing here reduces across elements, so results do not depend on the
// thread count. Consequence for the tests: cpu-vs-ref on gather_batch compares this code
// with itself; the GPU backend's gather kernel is still checked against it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "backend/backend.h"

namespace mnistctl {

class HostBackend : public Backend {
 public:
  // 64-byte aligned (a cache line, oneDNN's preferred alignment), released with the last
  // Tensor / Buffer that shares it.
  Tensor empty(const Shape& shape) override;
  Buffer alloc_bytes(size_t bytes) override;
  Buffer adopt_bytes(std::vector<uint8_t>&& bytes) override;
  void fill(Tensor& t, float value) override;
  void upload(Tensor& dst, const float* host) override;
  void download(const Tensor& src, float* host) override;
  void upload_bytes(Buffer& dst, const void* host, size_t bytes) override;
  void copy(const Tensor& src, Tensor& dst) override;  // src and dst may overlap
  bool host_memory() const override { return true; }  // lib/dist reduces in place with MPI

  // Validates every index of the batch before writing anything.
  void gather_batch(const Buffer& images, const Buffer& labels_u8, int64_t sample_size,
                    const Buffer& order, int64_t first, int64_t n, Tensor& x,
                    Tensor& labels) override;

 protected:
  // tag: the backend's name in error messages ("ref", "cpu"); threads: the OpenMP team
  // size of the loops here and of the derived backend's own loops (>= 1).
  HostBackend(std::string tag, int threads) : tag_(std::move(tag)), threads_(threads) {}

  // Below this many elements a loop runs on one thread: waking the pool costs more than
  // the work.
  static constexpr int64_t kParallelMin = 1 << 14;

  const std::string tag_;
  const int threads_;
};

}  // namespace mnistctl
