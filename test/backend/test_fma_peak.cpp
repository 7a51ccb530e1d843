// The arithmetic-peak probe (backend/cpu/fma_peak.h) that `mnistctl bench` prints: its loops
// must really run `iters` multiply-adds per lane, or the peak would be fiction. Each loop is
// replayed in scalar code and compared lane by lane, exactly (fma_peak.h says why exactness
// holds). A probe the CPU cannot run must refuse, not fake a result.
#include <catch2/catch.hpp>

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <vector>

#include "backend/cpu/fma_peak.h"

using namespace mnistctl::cpu;

namespace {

constexpr long kIters = 1000;

int lanes(ProbeIsa isa) { return isa == ProbeIsa::avx2_fma ? 8 : 16; }

// The recurrence of fma_peak.h, in scalar float.
float replay(ProbeIsa isa, int accumulator, long iters) {
  float a = static_cast<float>(accumulator + 1) * 1e-3f;
  const float tiny = std::ldexp(1.0f, -24);
  for (long i = 0; i < iters; ++i) {
    if (isa == ProbeIsa::avx512_bf16) {
      a = a + tiny;
      a = a + tiny;
    } else {
      a = std::fma(a, 0.999999f, 1e-7f);
    }
  }
  return a;
}

}  // namespace

TEST_CASE("each peak probe runs its multiply-adds on every lane, or refuses on a CPU without them") {
  for (ProbeIsa isa : {ProbeIsa::avx2_fma, ProbeIsa::avx512_fma, ProbeIsa::avx512_bf16}) {
    INFO(probe_name(isa));
    std::vector<float> out(12 * 16, -1.0f);
    if (!probe_supported(isa)) {
      std::printf("%s: not on this CPU; the probe must refuse\n", probe_name(isa));
      CHECK_FALSE(run_probe_loop(isa, kIters, out.data()));
      CHECK(out[0] == -1.0f);
      CHECK(measure_peak_gflops(isa, 1) == 0);
      continue;
    }
    REQUIRE(run_probe_loop(isa, kIters, out.data()));
    double max_diff = 0;
    for (int acc = 0; acc < 12; ++acc) {
      const float want = replay(isa, acc, kIters);
      REQUIRE(replay(isa, acc, kIters - 1) != want);  // a missing iteration would show
      for (int lane = 0; lane < lanes(isa); ++lane) {
        const float got = out[acc * lanes(isa) + lane];
        REQUIRE(std::isfinite(got));
        max_diff = std::max(max_diff, static_cast<double>(std::fabs(got - want)));
      }
    }
    std::printf("%s: %ld iterations, max diff against the scalar replay %.3g\n", probe_name(isa), kIters, max_diff);
    CHECK(max_diff == 0);
    // The timed form: a rate, finite and positive (its size is the machine's business).
    const double g = measure_peak_gflops(isa, 1);
    CHECK(std::isfinite(g));
    CHECK(g > 0);
  }
}
