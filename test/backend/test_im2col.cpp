// The transposed column matrix of the CPU backend's lowered convolution backward-weights
// (backend/cpu/im2col.h, im2col_t_nchw) against its definition, element by element, for bf16
// (2-byte) and f32 (4-byte) elements: LeNet's conv2, strides, padding, output planes that do
// not fill the 32-value blocks of the AVX-512 form, blocks that read exactly 64 values (the
// most its two registers hold) and 65 (the scalar form then), and 1 to 3 threads. It is a
// copy, so the comparison is exact, and nothing past the matrix may be written. Also
// checked: it is the transpose of im2col_nhwc's matrix, with the column order of KCRS weights.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/im2col.h"

using namespace mnistctl;

namespace {

ConvDesc conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh = 1, int64_t sw = 1,
              int64_t ph = 0, int64_t pw = 0) {
  ConvDesc d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = 3, d.kh = kh, d.kw = kw;
  d.sh = sh, d.sw = sw, d.ph = ph, d.pw = pw;
  return d;
}

// colsT[(ch, ky, kx)][(img, oy, ox)] = x[img][ch][oy*sh - ph + ky][ox*sw - pw + kx], 0 outside.
template <class T>
std::vector<T> definition(const ConvDesc& d, const std::vector<T>& x) {
  const int64_t oh = d.oh(), ow = d.ow(), r = d.n * oh * ow;
  std::vector<T> out(static_cast<size_t>(d.c * d.kh * d.kw * r));
  for (int64_t ch = 0; ch < d.c; ++ch)
    for (int64_t ky = 0; ky < d.kh; ++ky)
      for (int64_t kx = 0; kx < d.kw; ++kx)
        for (int64_t img = 0; img < d.n; ++img)
          for (int64_t oy = 0; oy < oh; ++oy)
            for (int64_t ox = 0; ox < ow; ++ox) {
              const int64_t iy = oy * d.sh - d.ph + ky, ix = ox * d.sw - d.pw + kx;
              const bool in = iy >= 0 && iy < d.h && ix >= 0 && ix < d.w;
              out[static_cast<size_t>(((ch * d.kh + ky) * d.kw + kx) * r + (img * oh + oy) * ow + ox)] =
                  in ? x[static_cast<size_t>(((img * d.c + ch) * d.h + iy) * d.w + ix)] : T{0};
            }
  return out;
}

// Distinct nonzero values, so that a misplaced element or a missing zero shows.
template <class T>
std::vector<T> pattern(const ConvDesc& d) {
  std::vector<T> x(static_cast<size_t>(d.n * d.c * d.h * d.w));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(1 + i % 65000);
  return x;
}

template <class T>
void check(const ConvDesc& d, const char* what) {
  const std::vector<T> x = pattern<T>(d), want = definition(d, x);
  constexpr size_t kGuard = 64;  // elements past the matrix, which must keep their marker
  for (int threads : {1, 2, 3}) {
    std::vector<T> got(want.size() + kGuard, T{0xAB});
    cpu::im2col_t_nchw(d, x.data(), sizeof(T), got.data(), threads);
    size_t bad = 0, past = 0;
    for (size_t i = 0; i < want.size(); ++i) bad += got[i] != want[i];
    for (size_t i = want.size(); i < got.size(); ++i) past += got[i] != T{0xAB};
    std::printf("im2col_t %-34s %zu-byte elements, %d thread(s): %zu of %zu differ, %zu written past the end\n",
                what, sizeof(T), threads, bad, want.size(), past);
    INFO(what << ", " << sizeof(T) << "-byte elements, " << threads << " threads");
    CHECK(bad == 0);
    CHECK(past == 0);
  }
}

template <class T>
void check_all() {
  check<T>(conv(10, 20, 12, 12, 5, 5), "lenet conv2");
  check<T>(conv(3, 2, 28, 28, 5, 5), "24x24 output");
  check<T>(conv(2, 3, 9, 9, 3, 3), "7x7 output (partial blocks)");
  check<T>(conv(2, 3, 11, 11, 3, 3, 2, 2), "stride 2");
  check<T>(conv(2, 3, 9, 8, 3, 3, 1, 2), "stride 1x2");
  check<T>(conv(2, 3, 8, 8, 3, 3, 1, 1, 1, 1), "padding 1");
  check<T>(conv(2, 2, 7, 9, 5, 3, 2, 1, 2, 0), "padding 2x0, stride 2x1");
  check<T>(conv(2, 2, 10, 40, 3, 3), "38-wide output rows");
  // One-row outputs 49 - 33 + 1 = 17 and 50 - 34 + 1 = 17 wide: a block of 32 outputs spans
  // two input rows, reading 49 + 14 + 1 = 64 values (the permute form, both registers full)
  // and 50 + 14 + 1 = 65 (more than it holds: the scalar form).
  check<T>(conv(1, 1, 3, 49, 1, 33), "blocks reading 64 values");
  check<T>(conv(1, 1, 3, 50, 1, 34), "blocks reading 65 values");
  check<T>(conv(1, 1, 1, 1, 1, 1), "1x1");
}

}  // namespace

TEST_CASE("im2col_t_nchw is its definition, in bf16 and f32 elements", "[backend][im2col]") {
  std::printf("AVX-512BW (the bf16 permute form): %s\n", cpu::cpu_has_avx512bw() ? "yes" : "no, scalar form only");
  check_all<uint16_t>();
  check_all<uint32_t>();
}

TEST_CASE("im2col_t_nchw is the transpose of im2col_nhwc, columns in KCRS order", "[backend][im2col]") {
  const ConvDesc d = conv(4, 6, 10, 10, 3, 3, 1, 1, 1, 1);
  const std::vector<uint32_t> x = pattern<uint32_t>(d);  // NCHW
  std::vector<uint32_t> x_nhwc(x.size());
  for (int64_t img = 0; img < d.n; ++img)
    for (int64_t ch = 0; ch < d.c; ++ch)
      for (int64_t i = 0; i < d.h * d.w; ++i)
        x_nhwc[static_cast<size_t>((img * d.h * d.w + i) * d.c + ch)] = x[static_cast<size_t>((img * d.c + ch) * d.h * d.w + i)];
  const int64_t r = d.n * d.oh() * d.ow(), p = d.c * d.kh * d.kw;
  std::vector<uint32_t> cols(static_cast<size_t>(r * p)), cols_t(static_cast<size_t>(r * p));
  cpu::im2col_nhwc(d, x_nhwc.data(), 4, cols.data(), 2);
  cpu::im2col_t_nchw(d, x.data(), 4, cols_t.data(), 2);
  size_t bad = 0;
  for (int64_t row = 0; row < r; ++row)
    for (int64_t ch = 0; ch < d.c; ++ch)
      for (int64_t k = 0; k < d.kh * d.kw; ++k)  // cols: (ky, kx, ch); cols_t: (ch, ky, kx)
        bad += cols[static_cast<size_t>(row * p + k * d.c + ch)] != cols_t[static_cast<size_t>((ch * d.kh * d.kw + k) * r + row)];
  std::printf("im2col_t vs im2col_nhwc transposed: %zu of %zu differ\n", bad, cols.size());
  CHECK(bad == 0);
}
