// The single-channel convolution loops of the CPU backend (backend/cpu/single_channel_conv.h)
// against a plain reference in double, shape by shape, printing the max difference: every
// supported channel split (whole vectors, the shared vector of 4 or 8 channels, both),
// strides, padding, rows whose last block is partial, no bias, and bf16 (against the same
// reference on bf16-rounded inputs), in both forms (the tap form where it applies, the
// block form everywhere), which must agree bit for bit. Also: repeated calls are
// bit-identical, no write lands past the outputs, and shapes the loops do not take are
// refused (the backend then uses oneDNN). Skips, saying why, on a CPU without AVX-512F.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/single_channel_conv.h"
#include "core/rng.h"
#include "test_util.h"

using namespace mnistctl;
using test::guarded;
using test::rel_diff;
using test::unguard;

namespace {

using Host = std::vector<float>;

ConvDesc conv1(int64_t n, int64_t h, int64_t w, int64_t k, int64_t kh, int64_t kw, int64_t sh = 1, int64_t sw = 1,
               int64_t ph = 0, int64_t pw = 0, bool bias = true) {
  ConvDesc d;
  d.n = n, d.c = 1, d.h = h, d.w = w, d.k = k, d.kh = kh, d.kw = kw;
  d.sh = sh, d.sw = sw, d.ph = ph, d.pw = pw, d.bias = bias;
  return d;
}

float to_bf16(float f) {  // round to nearest even, by the definition of the format
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint32_t lsb = (u >> 16) & 1u;
  u = (u + 0x7fffu + lsb) & 0xffff0000u;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

struct Result {
  Host y, dw, db;
};

// y = conv(x, w) + b (nhwc), dW and db from dy (nhwc), all in double.
Result reference(const ConvDesc& d, Host x, Host w, const Host& b, Host dy, bool bf16) {
  if (bf16) {
    for (float& v : x) v = to_bf16(v);
    for (float& v : w) v = to_bf16(v);
  }
  Host dy_raw = dy;
  if (bf16)
    for (float& v : dy) v = to_bf16(v);
  const int64_t oh = d.oh(), ow = d.ow(), taps = d.kh * d.kw;
  std::vector<double> y(static_cast<size_t>(d.n * oh * ow * d.k)), dw(static_cast<size_t>(d.k * taps)),
      db(static_cast<size_t>(d.k));
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t c = 0; c < d.k; ++c) {
          const size_t at = static_cast<size_t>(((n * oh + oy) * ow + ox) * d.k + c);
          double s = d.bias ? b[static_cast<size_t>(c)] : 0.0;
          for (int64_t ky = 0; ky < d.kh; ++ky)
            for (int64_t kx = 0; kx < d.kw; ++kx) {
              const int64_t iy = oy * d.sh - d.ph + ky, ix = ox * d.sw - d.pw + kx;
              if (iy < 0 || ix < 0 || iy >= d.h || ix >= d.w) continue;
              const double xv = x[static_cast<size_t>((n * d.h + iy) * d.w + ix)];
              s += xv * w[static_cast<size_t>(c * taps + ky * d.kw + kx)];
              dw[static_cast<size_t>(c * taps + ky * d.kw + kx)] += xv * dy[at];
            }
          y[at] = s;
          db[static_cast<size_t>(c)] += dy_raw[at];
        }
  return {Host(y.begin(), y.end()), Host(dw.begin(), dw.end()), Host(db.begin(), db.end())};
}

// Bit for bit (a plain bool: Catch would print the vectors of a failed ==).
bool same(const Host& a, const Host& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// rel_diff over the entries the reference has finite; where it has Inf or NaN, the result
// must have one too (else infinity).
double rel_diff_nonfinite(const Host& got, const Host& want) {
  Host g, w;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isfinite(want[i]) != std::isfinite(got[i])) return INFINITY;
    if (std::isfinite(want[i])) g.push_back(got[i]), w.push_back(want[i]);
  }
  return rel_diff(g, w);
}

// Runs the loops on `threads` threads, with the scratch they ask for (NaN-filled: nothing
// may read scratch it has not written), into outputs with guard floats past their ends.
Result run(const ConvDesc& d, const Host& x, const Host& w, const Host& b, const Host& dy, bool bf16, int threads,
           cpu::SingleChannelForm form = cpu::SingleChannelForm::best) {
  const size_t bytes = (cpu::single_channel_conv_scratch_bytes(d, threads) + 63) / 64 * 64;
  std::unique_ptr<void, decltype(&std::free)> scratch(std::aligned_alloc(64, bytes), &std::free);
  std::fill_n(static_cast<float*>(scratch.get()), bytes / sizeof(float), NAN);
  Host y = guarded(Host(dy.size(), NAN)), dw = guarded(Host(w.size(), NAN)),
       db = guarded(Host(static_cast<size_t>(d.k), NAN));
  cpu::single_channel_conv_forward(d, x.data(), w.data(), d.bias ? b.data() : nullptr, y.data(), bf16, scratch.get(),
                                   threads, form);
  cpu::single_channel_conv_backward_weights(d, x.data(), dy.data(), dw.data(), d.bias ? db.data() : nullptr, bf16,
                                            scratch.get(), threads, form);
  return {unguard(y, "y"), unguard(dw, "dw"), unguard(db, "db")};
}

// The skip is decided by the CPU, not by single_channel_conv_supported: a broken
// supported() must fail here, not turn the file into a skip.
void require_avx512() {
  if (!cpu::cpu_has_avx512f()) test::skip_test("this CPU has no AVX-512F; the backend runs single-channel convolutions on oneDNN");
  REQUIRE(cpu::single_channel_conv_supported(conv1(1, 28, 28, 20, 5, 5)));
}

}  // namespace

TEST_CASE("single-channel convolution loops match a double reference", "[backend][cpu][conv]") {
  require_avx512();
  const ConvDesc cases[] = {
      conv1(100, 28, 28, 20, 5, 5),                    // LeNet conv1: one vector + 4 shared channels
      conv1(3, 28, 28, 16, 5, 5),                      // one whole vector
      conv1(3, 13, 11, 4, 3, 3, 2, 1, 1, 1),           // 4 channels only, stride 2 by 1, padding
      conv1(2, 9, 21, 8, 5, 5, 1, 2, 2, 2),            // 8 channels, stride 1 by 2
      conv1(2, 12, 30, 24, 3, 5, 1, 1, 0, 2, false),   // 16 + 8, no bias, partial last block
      conv1(2, 10, 10, 32, 5, 3, 1, 1, 2, 0),          // two whole vectors
      conv1(2, 8, 19, 36, 3, 3, 2, 3, 1, 1),           // 32 + 4, stride 3 across the row
      conv1(1, 7, 7, 40, 7, 7, 1, 1, 3, 3),            // 32 + 8, a 7x7 kernel, padding 3
      conv1(5, 6, 5, 20, 2, 4, 1, 1, 3, 3),            // padding wider than the kernel
      conv1(2, 9, 40, 20, 3, 5, 1, 5, 1, 0),           // 4 shared pixels at the widest column stride
      conv1(2, 7, 50, 24, 3, 3, 2, 15, 0, 1),          // 2 shared pixels, column stride 15
      // The tap form's tails: rows of pixels that are not a whole number of blocks (6
      // pixels, 6 shared vectors), a last shared vector that is partial, rows of one block.
      conv1(2, 9, 12, 40, 3, 3),                       // 32 + 8: 10 columns, 5 shared vectors of 2
      conv1(3, 7, 7, 36, 5, 5, 1, 1, 2, 2),            // 32 + 4: 7 columns, the last vector 3 pixels
      conv1(2, 6, 8, 8, 5, 5, 2, 1),                   // 8 channels only, 4 columns, row stride 2
      conv1(1, 5, 8, 20, 5, 5),                        // one output row of exactly 4 columns
      conv1(2, 30, 31, 24, 3, 3, 1, 1, 1, 1),          // 16 + 8: 31 columns, padding
      conv1(2, 6, 7, 20, 5, 5),                        // 3 columns: fewer than a shared vector's 4
  };
  for (bool bf16 : {false, true}) {
    for (const ConvDesc& d : cases) {
      INFO("n" << d.n << " " << d.h << "x" << d.w << " k" << d.k << " " << d.kh << "x" << d.kw << " s" << d.sh << ","
               << d.sw << " p" << d.ph << "," << d.pw << (d.bias ? "" : " nobias") << (bf16 ? " bf16" : ""));
      REQUIRE(cpu::single_channel_conv_supported(d));
      Pcg32 rng(static_cast<uint64_t>(d.k * 131 + d.w), 3);
      auto random = [&](int64_t n) { return test::random_floats(rng, n); };
      const Host x = random(d.n * d.h * d.w), w = random(d.k * d.kh * d.kw), b = random(d.k),
                 dy = random(d.n * d.k * d.oh() * d.ow());
      const Result want = reference(d, x, w, b, dy, bf16);
      const int threads = d.n < 5 ? 5 : 2;  // more threads than images: some get none
      const Result got = run(d, x, w, b, dy, bf16, threads);
      const double ry = rel_diff(got.y, want.y), rw = rel_diff(got.dw, want.dw);
      const double rb = d.bias ? rel_diff(got.db, want.db) : 0.0;
      const bool taps = cpu::single_channel_conv_tap_form(d);
      std::printf("%s %s n%-3lld %2lldx%-2lld k%-2lld %lldx%lld s%lld,%lld p%lld,%lld: max rel diff y %.2e dw %.2e db %.2e\n",
                  bf16 ? "bf16" : "fp32", taps ? "taps  " : "blocks", (long long)d.n, (long long)d.h, (long long)d.w,
                  (long long)d.k, (long long)d.kh, (long long)d.kw, (long long)d.sh, (long long)d.sw, (long long)d.ph,
                  (long long)d.pw, ry, rw, rb);
      // FP32 sums of up to 57,600 products in another order than the reference's; in bf16
      // the reference rounds the same inputs, so the bound is the same.
      CHECK(ry <= 1e-5);
      CHECK(rw <= 1e-5);
      CHECK(rb <= 1e-5);
      if (!d.bias) CHECK(std::isnan(got.db[0]));  // db untouched without a bias
      // Repeated calls, on the same thread count, are bit-identical.
      const Result again = run(d, x, w, b, dy, bf16, threads);
      CHECK(same(again.y, got.y));
      CHECK(same(again.dw, got.dw));
      // One thread sums in another order: the same within the bound.
      const Result one = run(d, x, w, b, dy, bf16, 1);
      CHECK(rel_diff(one.y, want.y) <= 1e-5);
      CHECK(rel_diff(one.dw, want.dw) <= 1e-5);
      // The block form adds the same products in the same order as the tap form.
      if (taps) {
        const Result blocks = run(d, x, w, b, dy, bf16, threads, cpu::SingleChannelForm::blocks);
        CHECK(same(blocks.y, got.y));
        CHECK(same(blocks.dw, got.dw));
        if (d.bias) CHECK(same(blocks.db, got.db));
      }
    }
  }
}

TEST_CASE("the single-channel loops take the tap form for 5x5 and 3x3 kernels at column stride 1",
          "[backend][cpu][conv]") {
  require_avx512();
  CHECK(cpu::single_channel_conv_tap_form(conv1(100, 28, 28, 20, 5, 5)));  // LeNet's conv1
  CHECK(cpu::single_channel_conv_tap_form(conv1(1, 8, 8, 16, 3, 3, 2, 1, 1, 1)));
  CHECK(cpu::single_channel_conv_tap_form(conv1(1, 5, 8, 20, 5, 5)));  // 4 columns: one shared vector
  CHECK_FALSE(cpu::single_channel_conv_tap_form(conv1(1, 6, 7, 20, 5, 5)));  // 3 columns
  CHECK(cpu::single_channel_conv_tap_form(conv1(1, 6, 7, 16, 5, 5)));  // no shared vector: any width
  CHECK_FALSE(cpu::single_channel_conv_tap_form(conv1(1, 28, 28, 20, 5, 5, 1, 2)));  // column stride 2
  CHECK_FALSE(cpu::single_channel_conv_tap_form(conv1(1, 28, 28, 20, 7, 7)));
  CHECK_FALSE(cpu::single_channel_conv_tap_form(conv1(1, 28, 28, 20, 3, 5)));
  CHECK_FALSE(cpu::single_channel_conv_tap_form(conv1(1, 28, 28, 12, 5, 5)));  // not supported at all
}

TEST_CASE("bf16 in the single-channel loops rounds the inputs of the products", "[backend][cpu][conv][bf16]") {
  require_avx512();
  // Inputs that bf16 changes: the bf16 result must equal the reference on rounded inputs
  // (the bound above) and differ from the FP32 result by more than the FP32 noise.
  const ConvDesc d = conv1(4, 12, 12, 20, 5, 5);
  Pcg32 rng(77, 1);
  auto random = [&](int64_t n) { return test::random_floats(rng, n); };
  const Host x = random(d.n * d.h * d.w), w = random(d.k * 25), b = random(d.k), dy = random(d.n * d.k * 64);
  const Result fp32 = run(d, x, w, b, dy, false, 2), bf16 = run(d, x, w, b, dy, true, 2);
  const double apart = rel_diff(bf16.y, fp32.y), apart_w = rel_diff(bf16.dw, fp32.dw);
  std::printf("bf16 against fp32 on the same inputs: max rel diff y %.2e dw %.2e\n", apart, apart_w);
  CHECK(apart > 1e-4);
  CHECK(apart < 2e-2);
  CHECK(apart_w > 1e-4);
  CHECK(apart_w < 2e-2);
  // db sums the unrounded dy in both.
  CHECK(rel_diff(bf16.db, fp32.db) == 0.0);
}

TEST_CASE("the single-channel loops take only the shapes they were written for", "[backend][cpu][conv]") {
  require_avx512();
  CHECK(cpu::single_channel_conv_supported(conv1(1, 28, 28, 20, 5, 5)));
  ConvDesc two_channels = conv1(1, 12, 12, 50, 5, 5);
  two_channels.c = 2;
  CHECK_FALSE(cpu::single_channel_conv_supported(two_channels));
  for (int64_t k : {1, 2, 3, 6, 12, 18, 44, 48, 64}) {
    INFO("k " << k);
    CHECK_FALSE(cpu::single_channel_conv_supported(conv1(1, 28, 28, k, 5, 5)));
  }
  for (int64_t k : {4, 8, 16, 20, 24, 32, 36, 40}) {
    INFO("k " << k);
    CHECK(cpu::single_channel_conv_supported(conv1(1, 28, 28, k, 5, 5)));
  }
  // The pixels sharing a vector must fit one 16-float load of the row: 4 of them at column
  // stride 5 do (3 * 5 < 16), at stride 6 they do not.
  CHECK(cpu::single_channel_conv_supported(conv1(1, 40, 40, 20, 5, 5, 1, 5)));
  CHECK_FALSE(cpu::single_channel_conv_supported(conv1(1, 40, 40, 20, 5, 5, 1, 6)));
}

// Runs `d` on x (which holds non-finite values), with random weights, bias and dy, in
// `form`, and checks y and dW against the reference: Inf or NaN exactly where it has them,
// the rest within the bound.
static void check_nonfinite_inputs(const ConvDesc& d, const Host& x, int threads, const char* what,
                                   cpu::SingleChannelForm form = cpu::SingleChannelForm::best) {
  Pcg32 rng(91, 2);
  auto random = [&](int64_t n) { return test::random_floats(rng, n); };
  const Host w = random(d.k * d.kh * d.kw), b = random(d.k), dy = random(d.n * d.k * d.oh() * d.ow());
  const Result want = reference(d, x, w, b, dy, false);
  const Result got = run(d, x, w, b, dy, false, threads, form);
  const double ry = rel_diff_nonfinite(got.y, want.y), rw = rel_diff_nonfinite(got.dw, want.dw);
  std::printf("%s: max rel diff y %.2e dw %.2e\n", what, ry, rw);
  CHECK(ry <= 1e-5);
  CHECK(rw <= 1e-5);
}

TEST_CASE("input columns that no window reads do not reach the single-channel loops' results",
          "[backend][cpu][conv]") {
  require_avx512();
  Pcg32 rng(17, 5);
  auto random = [&](int64_t n) { return test::random_floats(rng, n); };
  // The block form. Width 30, 5 columns, column stride 2: 13 outputs a row, the last block
  // partial, and column 29 in no window. Inf there must leave y and dW finite and right
  // (the block's absent pixels must not multiply it by their zero dy).
  const ConvDesc d = conv1(1, 5, 30, 16, 5, 5, 1, 2);
  Host x = random(d.h * d.w);
  for (int64_t r = 0; r < d.h; ++r) x[static_cast<size_t>(r * d.w + 29)] = INFINITY;
  check_nonfinite_inputs(d, x, 1, "Inf in an unread column");

  // The tap form: 9 columns, so the last shared vector holds one pixel and reads the
  // inputs right of the row for its absent ones; row stride 2, so row 7 is in no window.
  // NaN in row 7 must not reach y or dW.
  const ConvDesc t = conv1(2, 8, 11, 20, 3, 3, 2, 1);
  REQUIRE(cpu::single_channel_conv_tap_form(t));
  Host xt = random(t.n * t.h * t.w);
  for (int64_t n = 0; n < t.n; ++n)
    for (int64_t c = 0; c < t.w; ++c) xt[static_cast<size_t>((n * t.h + 7) * t.w + c)] = NAN;
  check_nonfinite_inputs(t, xt, 2, "NaN in an unread row (tap form)");
}

TEST_CASE("absent pixels of a partial last block do not turn an input's Inf into NaN in other taps",
          "[backend][cpu][conv]") {
  require_avx512();
  // 7 columns, 3x3: 5 outputs a row, so the tap form's last shared vector (4 pixels) has
  // one, and the block form's only block (8 pixels) five. Their absent pixels would read
  // columns 5 and 6, which present pixels read at other taps. Inf in column 6 makes the
  // taps that read it non-finite; the other taps must stay finite and right.
  Pcg32 rng(23, 7);
  for (int64_t k : {20, 16, 8}) {
    const ConvDesc d = conv1(2, 5, 7, k, 3, 3);
    Host x = test::random_floats(rng, d.n * d.h * d.w);
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t r = 0; r < d.h; ++r) x[static_cast<size_t>((n * d.h + r) * d.w + 6)] = INFINITY;
    INFO("k " << k);
    if (k != 16) REQUIRE(cpu::single_channel_conv_tap_form(d));
    check_nonfinite_inputs(d, x, 2, "Inf in a read column, best form");
    check_nonfinite_inputs(d, x, 2, "Inf in a read column, block form", cpu::SingleChannelForm::blocks);
  }
}

TEST_CASE("the single-channel loops refuse a shape they have no kernel for", "[backend][cpu][conv]") {
  require_avx512();
  const ConvDesc d = conv1(1, 8, 8, 12, 3, 3);
  REQUIRE_FALSE(cpu::single_channel_conv_supported(d));
  Host x(64), w(12 * 9), y(12 * 36), dw(12 * 9);
  std::vector<float> scratch(1 << 16);
  CHECK_THROWS_WITH(cpu::single_channel_conv_forward(d, x.data(), w.data(), nullptr, y.data(), false, scratch.data(), 1),
                    Catch::Contains("unsupported shape"));
  CHECK_THROWS_WITH(cpu::single_channel_conv_backward_weights(d, x.data(), y.data(), dw.data(), nullptr, false,
                                                              scratch.data(), 1),
                    Catch::Contains("12 filters"));
}
