// The span loops of the CPU backend's FP32 convolution backward (backend/cpu/span_conv.h)
// against a plain reference in double, shape by shape, printing the max difference: spans of
// 1 to 7 vectors (whole, and with a partial last vector), strides, row padding, rows and
// columns that no window reads, batches that leave partial tiles, filter counts that leave
// partial tiles, no bias, 1 to 3 threads and more threads than images. Also: repeated calls
// are bit-identical, the outputs are overwritten whatever they held, and shapes the loops do
// not take are refused (the backend then lowers to matmul). Skips, saying why, on a CPU
// without AVX-512F.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/span_conv.h"
#include "core/rng.h"
#include "test_util.h"

using namespace mnistctl;
using test::guarded;
using test::rel_diff;
using test::unguard;

namespace {

using Host = std::vector<float>;

ConvDesc conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t kh, int64_t kw, int64_t sh = 1,
              int64_t sw = 1, int64_t ph = 0, int64_t pw = 0, bool bias = true) {
  ConvDesc d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.kh = kh, d.kw = kw;
  d.sh = sh, d.sw = sw, d.ph = ph, d.pw = pw, d.bias = bias;
  return d;
}

struct Result {
  Host dx, dw, db;
};

// dx (nhwc), dW (KCRS) and db from dy (nhwc), x (nhwc) and W (KCRS), in double.
Result reference(const ConvDesc& d, const Host& x, const Host& w, const Host& dy) {
  const int64_t oh = d.oh(), ow = d.ow();
  std::vector<double> dx(x.size()), dw(w.size()), db(static_cast<size_t>(d.k));
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t o = 0; o < d.k; ++o) {
          const double g = dy[static_cast<size_t>(((n * oh + oy) * ow + ox) * d.k + o)];
          db[static_cast<size_t>(o)] += g;
          for (int64_t ci = 0; ci < d.c; ++ci)
            for (int64_t r = 0; r < d.kh; ++r)
              for (int64_t s = 0; s < d.kw; ++s) {
                const int64_t iy = oy * d.sh - d.ph + r, ix = ox * d.sw - d.pw + s;
                if (iy < 0 || ix < 0 || iy >= d.h || ix >= d.w) continue;
                const size_t xi = static_cast<size_t>(((n * d.h + iy) * d.w + ix) * d.c + ci);
                const size_t wi = static_cast<size_t>(((o * d.c + ci) * d.kh + r) * d.kw + s);
                dx[xi] += g * w[wi];
                dw[wi] += g * x[xi];
              }
        }
  return {Host(dx.begin(), dx.end()), Host(dw.begin(), dw.end()), Host(db.begin(), db.end())};
}

// Runs both directions on `threads` threads, with the scratch they ask for (filled with NaN
// first: nothing may be read before it is written), into outputs that start as NaN (every
// element must be written). Inputs and outputs have guards past their ends.
Result run(const ConvDesc& d, const Host& x, const Host& w, const Host& dy, int threads) {
  const size_t bytes = cpu::span_conv_scratch_bytes(d, threads);
  const size_t floats = (bytes + 63) / 64 * 16;
  std::unique_ptr<void, decltype(&std::free)> scratch(std::aligned_alloc(64, floats * sizeof(float)), &std::free);
  std::fill_n(static_cast<float*>(scratch.get()), floats, NAN);
  const Host xg = guarded(x), wg = guarded(w), dyg = guarded(dy);
  Host dx = guarded(Host(x.size(), NAN)), dw = guarded(Host(w.size(), NAN)),
       db = guarded(Host(static_cast<size_t>(d.k), NAN));
  cpu::span_conv_backward_data(d, dyg.data(), wg.data(), dx.data(), scratch.get(), threads);
  cpu::span_conv_backward_weights(d, xg.data(), dyg.data(), dw.data(), d.bias ? db.data() : nullptr, scratch.get(),
                                  threads);
  return {unguard(dx, "dx"), unguard(dw, "dw"), unguard(db, "db")};
}

// The skip is decided by the CPU, not by span_conv_supported: a broken supported() must fail
// here, not turn the file into a skip.
void require_avx512() {
  if (!cpu::cpu_has_avx512f()) test::skip_test("this CPU has no AVX-512F; the backend lowers these convolutions' backward to matmul");
  REQUIRE(cpu::span_conv_supported(conv(100, 20, 12, 12, 50, 5, 5)));
}

}  // namespace

TEST_CASE("span convolution loops match a double reference", "[backend][cpu][conv]") {
  require_avx512();
  const ConvDesc cases[] = {
      conv(100, 20, 12, 12, 50, 5, 5),              // LeNet conv2: span 100, 7 vectors, the last partial
      conv(6, 8, 10, 9, 13, 3, 2, 2, 1, 1, 0),      // span 16 (one vector), row stride 2, row padding
      conv(7, 6, 9, 10, 5, 4, 5, 1, 1, 2),          // span 30, padding rows half the kernel
      conv(9, 16, 8, 8, 10, 3, 3, 1, 1, 0, 0, false),  // span 48 (3 whole vectors), no bias
      conv(3, 13, 10, 12, 7, 2, 8),                 // span 104 (7 vectors), 7 filters: a partial tile
      conv(5, 4, 11, 15, 7, 3, 5, 2, 3),            // column stride 3: the last column in no window
      conv(2, 9, 7, 9, 4, 2, 7, 3, 1, 1),           // span 63, row stride 3: rows in no window
      conv(1, 32, 5, 5, 9, 3, 2),                   // span 64 (4 whole vectors), batch 1
      conv(11, 2, 6, 40, 3, 1, 40),                 // two channels, a kernel the whole row wide (span 80)
      conv(4, 18, 9, 9, 11, 3, 5),                  // span 90 (6 vectors)
      conv(3, 16, 8, 9, 5, 3, 7, 1, 2),             // span 112 (7 whole vectors), column stride 2
      conv(5, 3, 3, 8, 6, 5, 6, 1, 1, 2),           // a kernel taller than the input: padding rows in every window
      conv(2, 4, 2, 6, 3, 3, 4, 1, 1, 4),           // output rows whose windows lie wholly in padding
  };
  for (const ConvDesc& d : cases) {
    INFO("n" << d.n << " c" << d.c << " " << d.h << "x" << d.w << " k" << d.k << " " << d.kh << "x" << d.kw << " s"
             << d.sh << "," << d.sw << " p" << d.ph << "," << d.pw << (d.bias ? "" : " nobias"));
    REQUIRE(cpu::span_conv_supported(d));
    Pcg32 rng(static_cast<uint64_t>(d.k * 131 + d.w * 7 + d.c), 5);
    const Host x = test::random_floats(rng, d.n * d.h * d.w * d.c), w = test::random_floats(rng, d.k * d.c * d.kh * d.kw),
               dy = test::random_floats(rng, d.n * d.k * d.oh() * d.ow());
    const Result want = reference(d, x, w, dy);
    for (int threads : {1, 2, 3, static_cast<int>(d.n) + 2}) {
      const Result got = run(d, x, w, dy, threads);
      const double rx = rel_diff(got.dx, want.dx), rw = rel_diff(got.dw, want.dw);
      const double rb = d.bias ? rel_diff(got.db, want.db) : 0.0;
      std::printf("n%-3lld c%-2lld %2lldx%-2lld k%-2lld %lldx%lld s%lld,%lld p%lld,%lld, %d threads: max rel diff "
                  "dx %.2e dw %.2e db %.2e\n",
                  (long long)d.n, (long long)d.c, (long long)d.h, (long long)d.w, (long long)d.k, (long long)d.kh,
                  (long long)d.kw, (long long)d.sh, (long long)d.sw, (long long)d.ph, (long long)d.pw, threads, rx,
                  rw, rb);
      // FP32 sums of up to 6,400 products in another order than the reference's.
      CHECK(rx <= 1e-5);
      CHECK(rw <= 1e-5);
      CHECK(rb <= 1e-5);
      if (!d.bias)  // db untouched without a bias
        for (float v : got.db) CHECK(std::isnan(v));
      // Repeated calls, on the same thread count, are bit-identical.
      const Result again = run(d, x, w, dy, threads);
      CHECK(again.dx == got.dx);
      CHECK(again.dw == got.dw);
      if (d.bias) CHECK(again.db == got.db);
    }
  }
}

TEST_CASE("inputs that no window reads do not reach the span loops' results", "[backend][cpu][conv]") {
  require_avx512();
  // Width 12, 3 columns at stride 2 (5 outputs a row, column 11 in none), 11 rows at row
  // stride 3 with 3x3 windows (rows 9 and 10 in none). Inf in column 11 and NaN in rows 9
  // and 10 must leave dW finite and right (every dy is read, so dy holds no such value).
  const ConvDesc d = conv(3, 6, 11, 12, 5, 3, 3, 3, 2);
  Pcg32 rng(93, 4);
  Host x = test::random_floats(rng, d.n * d.h * d.w * d.c);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t y = 0; y < d.h; ++y)
      for (int64_t c = 0; c < d.c; ++c) {
        x[static_cast<size_t>(((n * d.h + y) * d.w + 11) * d.c + c)] = INFINITY;
        if (y >= 9)
          for (int64_t col = 0; col < d.w; ++col) x[static_cast<size_t>(((n * d.h + y) * d.w + col) * d.c + c)] = NAN;
      }
  const Host w = test::random_floats(rng, d.k * d.c * 9), dy = test::random_floats(rng, d.n * d.k * d.oh() * d.ow());
  const Result want = reference(d, x, w, dy);
  const Result got = run(d, x, w, dy, 2);
  const double rx = rel_diff(got.dx, want.dx), rw = rel_diff(got.dw, want.dw);
  std::printf("Inf and NaN in unread inputs: max rel diff dx %.2e dw %.2e\n", rx, rw);
  CHECK(rx <= 1e-5);
  CHECK(rw <= 1e-5);
  // The unread inputs' gradient is zero.
  CHECK(got.dx[static_cast<size_t>(11 * d.c)] == 0.0f);
  CHECK(got.dx[static_cast<size_t>(10 * d.w * d.c)] == 0.0f);
}

TEST_CASE("the span loops take only the shapes they were written for", "[backend][cpu][conv]") {
  require_avx512();
  CHECK(cpu::span_conv_supported(conv(1, 20, 12, 12, 50, 5, 5)));
  CHECK(cpu::span_conv_supported(conv(1, 2, 8, 8, 3, 3, 8)));      // span 16
  CHECK(cpu::span_conv_supported(conv(1, 16, 8, 8, 3, 3, 7)));     // span 112
  CHECK_FALSE(cpu::span_conv_supported(conv(1, 1, 28, 28, 20, 5, 5)));       // one channel: single_channel_conv.h
  CHECK_FALSE(cpu::span_conv_supported(conv(1, 3, 8, 8, 3, 3, 5)));          // span 15 < one vector
  CHECK_FALSE(cpu::span_conv_supported(conv(1, 16, 8, 8, 3, 3, 8)));         // span 128 > 7 vectors
  CHECK_FALSE(cpu::span_conv_supported(conv(1, 20, 12, 12, 50, 5, 5, 1, 1, 0, 1)));  // column padding
  CHECK_FALSE(cpu::span_conv_supported(conv(1, 4, 4, 4, 1, 1, 5, 1, 2)));    // a kernel wider than the input
  CHECK_FALSE(cpu::span_conv_supported(conv(1, 4, 2, 8, 1, 5, 4, 1, 1, 1)));  // taller than the padded input
  CHECK(cpu::span_conv_supported(conv(1, 4, 2, 8, 1, 5, 4, 1, 1, 2)));        // as tall as the padded input
  const ConvDesc d = conv(1, 20, 12, 12, 50, 5, 5, 1, 1, 2, 2);
  REQUIRE_FALSE(cpu::span_conv_supported(d));
  Host x(20 * 144), w(50 * 20 * 25), dy(50 * 144), dw(w.size());
  std::vector<float> scratch(1 << 18);
  CHECK_THROWS_WITH(cpu::span_conv_backward_data(d, dy.data(), w.data(), x.data(), scratch.data(), 1),
                    Catch::Contains("unsupported shape"));
  CHECK_THROWS_WITH(cpu::span_conv_backward_weights(d, x.data(), dy.data(), dw.data(), nullptr, scratch.data(), 1),
                    Catch::Contains("column padding 2"));
}
