// Epoch order and batch ranges (see batch.h).
#include "data/batch.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"

namespace mnistctl {

std::vector<int32_t> epoch_order(int64_t count, bool shuffle, uint64_t seed, int64_t epoch) {
  if (count < 0 || count > std::numeric_limits<int32_t>::max())
    throw UsageError(fmt::format("epoch_order: {} samples is out of range", count));
  if (epoch < 0) throw UsageError(fmt::format("epoch_order: negative epoch {}", epoch));
  std::vector<int32_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    Pcg32 rng(seed, static_cast<uint64_t>(epoch));
    rng.shuffle(order);
  }
  return order;
}

int64_t num_batches(int64_t count, int64_t batch_size) {
  if (batch_size <= 0) throw UsageError(fmt::format("batch size must be > 0, got {}", batch_size));
  if (count < 0) throw UsageError(fmt::format("sample count must be >= 0, got {}", count));
  return (count + batch_size - 1) / batch_size;
}

BatchRange batch_range(int64_t count, int64_t batch_size, int64_t index) {
  int64_t nb = num_batches(count, batch_size);
  if (index < 0 || index >= nb)
    throw RuntimeError(fmt::format("batch index {} out of range: {} samples make {} batches of {}",
                                   index, count, nb, batch_size));
  int64_t first = index * batch_size;
  return {first, std::min(batch_size, count - first)};
}

}  // namespace mnistctl
