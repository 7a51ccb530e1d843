// The epoch order and the batch policy, shared by training and evaluation on every backend.
//
// The order of an epoch is a pure function of (seed, epoch): a Fisher-Yates shuffle driven by
// Pcg32(seed, stream = epoch) (core/rng.h, specified output), so every machine sees the same
// order, each epoch differs, and a resumed run needs no saved RNG state.
// Batches: consecutive slices of that order; the last partial batch is kept as a smaller
// batch (nothing is dropped, nothing padded), so every sample is seen once per epoch.
#pragma once

#include <cstdint>
#include <vector>

namespace mnistctl {

// Identity when !shuffle. count must fit in int32.
std::vector<int32_t> epoch_order(int64_t count, bool shuffle, uint64_t seed, int64_t epoch);

// ceil(count / batch_size); batch_size must be > 0.
int64_t num_batches(int64_t count, int64_t batch_size);

struct BatchRange {
  int64_t first, n;  // positions [first, first + n) of the epoch order
};
// index in [0, num_batches): n == batch_size except for a smaller last batch.
BatchRange batch_range(int64_t count, int64_t batch_size, int64_t index);

}  // namespace mnistctl
