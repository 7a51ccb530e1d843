// The epoch order and the batch policy.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "data/batch.h"

using namespace mnistctl;

TEST_CASE("epoch_order is a deterministic permutation that differs per epoch and seed") {
  const int64_t n = 1000;
  auto a = epoch_order(n, true, 42, 0);
  REQUIRE(a.size() == size_t(n));
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int32_t> ident(n);
  std::iota(ident.begin(), ident.end(), 0);
  CHECK(sorted == ident);           // a permutation
  CHECK(a != ident);                // actually shuffled
  CHECK(epoch_order(n, true, 42, 0) == a);  // deterministic
  auto b = epoch_order(n, true, 42, 1);
  auto c = epoch_order(n, true, 43, 0);
  CHECK(b != a);
  CHECK(c != a);
  CHECK(c != b);
  // How different: successive epochs share few positions.
  int same = 0;
  for (int64_t i = 0; i < n; ++i) same += a[i] == b[i];
  CHECK(same < 20);
  CHECK(epoch_order(n, false, 42, 3) == ident);
  CHECK(epoch_order(0, true, 1, 0).empty());

  // The documented recipe: Fisher-Yates by Pcg32(seed, stream = epoch).
  std::vector<int32_t> ref = ident;
  Pcg32 rng(42, 1);
  rng.shuffle(ref);
  CHECK(ref == b);
  // Pinned values, so that a change of the recipe (which would change every run) is noticed.
  auto small = epoch_order(10, true, 0, 0);
  INFO("order(10, seed 0, epoch 0) starts " << small[0] << " " << small[1] << " " << small[2]);
  std::vector<int32_t> ref10(10);
  std::iota(ref10.begin(), ref10.end(), 0);
  Pcg32 r10(0, 0);
  for (size_t i = 10; i > 1; --i) std::swap(ref10[i - 1], ref10[r10.below(static_cast<uint32_t>(i))]);
  CHECK(small == ref10);

  CHECK_THROWS_AS(epoch_order(-1, true, 0, 0), Error);
  CHECK_THROWS_AS(epoch_order(int64_t(1) << 31, false, 0, 0), Error);
}

TEST_CASE("batch_range covers every sample once and keeps the last partial batch") {
  for (int64_t count : {0, 1, 7, 64, 100, 60000}) {
    for (int64_t bs : {1, 7, 64, 128, 1000}) {
      INFO("count " << count << " batch " << bs);
      int64_t nb = num_batches(count, bs);
      CHECK(nb == (count + bs - 1) / bs);
      int64_t next = 0;
      for (int64_t i = 0; i < nb; ++i) {
        BatchRange r = batch_range(count, bs, i);
        CHECK(r.first == next);
        CHECK(r.n >= 1);
        CHECK(r.n <= bs);
        if (i + 1 < nb) CHECK(r.n == bs);
        next += r.n;
      }
      CHECK(next == count);
    }
  }
  BatchRange last = batch_range(100, 64, 1);
  CHECK(last.first == 64);
  CHECK(last.n == 36);
  CHECK(num_batches(60000, 64) == 938);
  CHECK_THROWS_AS(num_batches(10, 0), Error);
  CHECK_THROWS_AS(batch_range(100, 64, 2), Error);
  CHECK_THROWS_AS(batch_range(100, 64, -1), Error);
}
