// Deterministic random numbers whose output is specified, so that the same seed gives
// the same shuffles, initial weights and dropout masks on every machine and backend.
//
// Pcg32 is PCG-XSH-RR 64/32 (O'Neill 2014) with the reference multiplier and increment.
// Bounded integers use rejection sampling (never std::uniform_int_distribution, whose
// output differs between standard libraries). hash_uniform() is a stateless counter hash
// (splitmix64's finaliser) that CUDA kernels use as well: dropout masks match across backends.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define MNISTCTL_HD __host__ __device__
#else
#define MNISTCTL_HD
#endif

namespace mnistctl {

MNISTCTL_HD inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A uniform float in [0, 1) from (seed, counter), 24 bits of resolution.
MNISTCTL_HD inline float hash_uniform(uint64_t seed, uint64_t counter) {
  uint64_t h = splitmix64(seed ^ splitmix64(counter));
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

class Pcg32 {
 public:
  explicit Pcg32(uint64_t seed = 0x853c49e6748fea9bull, uint64_t stream = 0xda3e39cb94b95bdbull) {
    seed_stream(seed, stream);
  }
  void seed_stream(uint64_t seed, uint64_t stream) {
    state_ = 0;
    inc_ = (stream << 1u) | 1u;
    next_u32();
    state_ += seed;
    next_u32();
  }
  uint32_t next_u32() {
    uint64_t old = state_;
    state_ = old * 6364136223846793005ull + inc_;
    uint32_t xorshifted = static_cast<uint32_t>(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = static_cast<uint32_t>(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
  }
  // Uniform in [0, bound), unbiased (rejects the top partial range).
  uint32_t below(uint32_t bound) {
    uint32_t threshold = (0u - bound) % bound;
    for (;;) {
      uint32_t r = next_u32();
      if (r >= threshold) return r % bound;
    }
  }
  // Uniform float in [0, 1), 24 bits.
  float uniform() { return static_cast<float>(next_u32() >> 8) * (1.0f / 16777216.0f); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal by Box-Muller (one value per call, the pair's second is dropped so
  // that the state is a plain function of the call count).
  float normal() {
    double u1 = (static_cast<double>(next_u32()) + 1.0) * (1.0 / 4294967297.0);
    double u2 = static_cast<double>(next_u32()) * (1.0 / 4294967296.0);
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  // Fisher-Yates shuffle.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) {
      size_t j = below(static_cast<uint32_t>(i));
      std::swap(v[i - 1], v[j]);
    }
  }
  // The whole state, for checkpoints.
  uint64_t state() const { return state_; }
  uint64_t inc() const { return inc_; }
  void restore(uint64_t state, uint64_t inc) {
    state_ = state;
    inc_ = inc;
  }

 private:
  uint64_t state_ = 0, inc_ = 0;
};

}  // namespace mnistctl
