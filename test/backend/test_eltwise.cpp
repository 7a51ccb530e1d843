// The CPU backend's own tanh and relu loops (backend/cpu/eltwise.h) against double
// references: tanh's error in units in the last place over a sweep of [-12, 12] and random
// bit patterns, printed with the worst input; the special values (signed zeros, denormals,
// Inf, NaN, the switch-over at 0.0004, saturation from 9); relu exactly; both backward passes; and the
// thread split (1-3 threads give the same bits, nothing is written past the end). Exits with
// the skip code, saying why, on a CPU without AVX-512F (where the backend runs oneDNN's).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/eltwise.h"
#include "test_util.h"

using namespace mnistctl;

namespace {

// The skip is decided by the CPU, not by eltwise_supported: a broken supported() must fail
// here, not turn the file into a skip.
void require_avx512() {
  if (!cpu::cpu_has_avx512f()) test::skip_test("this CPU has no AVX-512F; the backend runs its activations on oneDNN");
  REQUIRE(cpu::eltwise_supported(ActType::tanh));
  REQUIRE(cpu::eltwise_supported(ActType::relu));
  REQUIRE_FALSE(cpu::eltwise_supported(ActType::sigmoid));
  REQUIRE_FALSE(cpu::eltwise_supported(ActType::softrelu));
}

float bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// |got - want| in units of the last place of float at want (the spacing of floats there).
double ulps(float got, double want) {
  const double a = std::fabs(want);
  const double ulp = a < std::numeric_limits<float>::min() ? std::numeric_limits<float>::denorm_min()
                                                           : std::ldexp(1.0, std::ilogb(a) - 23);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

std::vector<float> forward(ActType a, const std::vector<float>& x, int threads = 1) {
  std::vector<float> y(x.size());
  cpu::eltwise_forward(a, x.data(), y.data(), static_cast<int64_t>(x.size()), threads);
  return y;
}

}  // namespace

TEST_CASE("eltwise: tanh within 8 ulps of the exact tanh", "[backend][cpu][eltwise]") {
  require_avx512();
  std::vector<float> x;
  for (int i = -1200000; i <= 1200000; ++i) x.push_back(static_cast<float>(i) * 1e-5f);
  std::mt19937 rng(3);
  for (int i = 0; i < 200000; ++i) {
    const float v = bits(rng());
    if (std::isfinite(v)) x.push_back(v);
  }
  const std::vector<float> y = forward(ActType::tanh, x);
  double worst = 0;
  float at = 0;
  size_t nonfinite = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    nonfinite += !std::isfinite(y[i]);
    const double e = ulps(y[i], std::tanh(static_cast<double>(x[i])));
    if (!(e <= worst)) worst = e, at = x[i];  // a NaN error becomes the worst, and fails below
  }
  std::printf("tanh: max error %.2f ulp at x = %.9g over %zu inputs\n", worst, static_cast<double>(at), x.size());
  CHECK(nonfinite == 0);
  // The rational approximation alone is off by up to about 5.5 ulp, the reciprocal's Newton
  // step adds up to about one (the worst case is printed above).
  CHECK(worst <= 8.0);
}

TEST_CASE("eltwise: tanh's special values", "[backend][cpu][eltwise]") {
  require_avx512();
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float den = std::numeric_limits<float>::denorm_min() * 3;
  const std::vector<float> x = {0.0f, -0.0f, den, -den, inf, -inf, nan, 100.0f, -100.0f, 9.0f, 9.6f, 1e30f,
                                0.0004f, std::nextafter(0.0004f, 0.0f), -0.0004f, 1e-20f};
  const std::vector<float> y = forward(ActType::tanh, x);
  CHECK(y[0] == 0.0f);
  CHECK_FALSE(std::signbit(y[0]));
  CHECK(y[1] == 0.0f);
  CHECK(std::signbit(y[1]));
  CHECK(y[2] == den);
  CHECK(y[3] == -den);
  CHECK(y[4] == 1.0f);
  CHECK(y[5] == -1.0f);
  CHECK(std::isnan(y[6]));
  CHECK(y[7] == 1.0f);
  CHECK(y[8] == -1.0f);
  CHECK(y[9] == 1.0f);  // from 9 on: +-1
  CHECK(y[10] == 1.0f);
  CHECK(y[11] == 1.0f);
  for (size_t i = 12; i < 15; ++i) {
    INFO("x = " << x[i]);
    CHECK(ulps(y[i], std::tanh(static_cast<double>(x[i]))) <= 8.0);
  }
  CHECK(y[15] == 1e-20f);
}

TEST_CASE("eltwise: relu exactly, NaN to 0 as the reference", "[backend][cpu][eltwise]") {
  require_avx512();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {-2.0f, -0.0f, 0.0f, 1e-40f, 3.5f, nan, std::numeric_limits<float>::infinity(), -1e-40f};
  const std::vector<float> y = forward(ActType::relu, x);
  const std::vector<float> want = {0.0f, 0.0f, 0.0f, 1e-40f, 3.5f, 0.0f, std::numeric_limits<float>::infinity(), 0.0f};
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("x = " << x[i]);
    CHECK(y[i] == want[i]);
  }
}

TEST_CASE("eltwise: backward passes from y", "[backend][cpu][eltwise]") {
  require_avx512();
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  const size_t n = 10007;
  std::vector<float> x(n), dy(n), dx(n);
  for (size_t i = 0; i < n; ++i) x[i] = u(rng), dy[i] = u(rng);
  for (ActType a : {ActType::tanh, ActType::relu}) {
    const std::vector<float> y = forward(a, x);
    cpu::eltwise_backward(a, y.data(), dy.data(), dx.data(), static_cast<int64_t>(n), 2);
    double worst = 0;
    for (size_t i = 0; i < n; ++i) {
      const double yi = y[i];
      const double want = a == ActType::tanh ? dy[i] * (1.0 - yi * yi) : dy[i] * (yi > 0 ? 1.0 : 0.0);
      if (a == ActType::relu) {
        INFO("relu backward at " << i);
        REQUIRE(dx[i] == static_cast<float>(want));
      } else {
        const double e = ulps(dx[i], want);
        if (!(e <= worst)) worst = e;  // a NaN error becomes the worst, and fails below
      }
    }
    if (a == ActType::tanh) {
      // Two roundings (1 - y*y in one FMA, then the product): within 2 ulps.
      std::printf("tanh backward: max error %.2f ulp against dy * (1 - y^2) in double\n", worst);
      CHECK(worst <= 2.0);
    }
    // In place: dx aliasing dy gives the same.
    std::vector<float> inplace = dy;
    cpu::eltwise_backward(a, y.data(), inplace.data(), inplace.data(), static_cast<int64_t>(n), 2);
    CHECK(inplace == dx);
  }
}

TEST_CASE("eltwise: relu's backward is dy * f'(x), NaN and Inf included, as the reference", "[backend][cpu][eltwise]") {
  require_avx512();
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> y = {1.0f, 1.0f, 0.0f, 0.0f, 2.0f};
  const std::vector<float> dy = {nan, inf, nan, inf, -3.0f};
  std::vector<float> dx(y.size());
  cpu::eltwise_backward(ActType::relu, y.data(), dy.data(), dx.data(), static_cast<int64_t>(y.size()), 1);
  CHECK(std::isnan(dx[0]));
  CHECK(dx[1] == inf);
  CHECK(std::isnan(dx[2]));  // 0 * NaN
  CHECK(std::isnan(dx[3]));  // 0 * Inf
  CHECK(dx[4] == -3.0f);
}

TEST_CASE("eltwise: the same bits on 1-3 threads, nothing past the end", "[backend][cpu][eltwise]") {
  require_avx512();
  for (int64_t n : {0, 1, 15, 16, 17, 1000, 100003}) {
    std::mt19937 rng(static_cast<uint32_t>(n));
    std::uniform_real_distribution<float> u(-5.0f, 5.0f);
    std::vector<float> x(static_cast<size_t>(n)), dy(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = u(rng), dy[static_cast<size_t>(i)] = u(rng);
    for (ActType a : {ActType::tanh, ActType::relu}) {
      std::vector<float> y1, dx1;
      for (int threads = 1; threads <= 3; ++threads) {
        std::vector<float> y(static_cast<size_t>(n) + 20, 7.0f), dx(static_cast<size_t>(n) + 20, 7.0f);
        cpu::eltwise_forward(a, x.data(), y.data(), n, threads);
        cpu::eltwise_backward(a, y.data(), dy.data(), dx.data(), n, threads);
        INFO("n " << n << ", threads " << threads);
        for (size_t i = static_cast<size_t>(n); i < y.size(); ++i) {
          REQUIRE(y[i] == 7.0f);
          REQUIRE(dx[i] == 7.0f);
        }
        y.resize(static_cast<size_t>(n));
        dx.resize(static_cast<size_t>(n));
        if (threads == 1) {
          y1 = y, dx1 = dx;
        } else {
          CHECK(y == y1);
          CHECK(dx == dx1);
        }
      }
    }
  }
}
