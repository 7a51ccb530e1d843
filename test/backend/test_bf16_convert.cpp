// The CPU backend's f32 -> bf16 conversion (backend/cpu/bf16_convert.h), which replaces
// oneDNN's reorder where only the data type changes: the scalar form against hand-worked
// values (ties to even, overflow to Inf, NaN, denormals, signed zeros); the buffer form (the
// AVX-512 BF16 instruction where the CPU has it) against the scalar one on every kind of
// bit pattern, at lengths around the 16- and 32-value steps and 1-3 threads, with nothing
// written past the end; the channels-last to NCHW form (gathers) against its definition; and
// both against oneDNN's own reorder, bit for bit (denormal inputs only where oneDNN converts
// with the CPU's BF16 instructions).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "backend/cpu/bf16_convert.h"
#include "backend/cpu/cpu_features.h"

using mnistctl::cpu::f32_to_bf16;
using mnistctl::cpu::nhwc_to_nchw_bf16;

namespace {

float bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Random 32-bit patterns, weighted so that every class shows up: normals, denormals, zeros,
// Inf, NaNs (quiet and signalling), and exact ties (low 16 bits 0x8000).
std::vector<float> patterns(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t u = rng();
    switch (rng() % 8) {
      case 0: u &= 0x807fffffu; break;                          // denormal or zero
      case 1: u = (u & 0x80000000u) | 0x7f800000u | (u & 0x7fffffu); break;  // Inf or NaN
      case 2: u = (u & 0xffff0000u) | 0x8000u; break;           // a tie
      default: break;                                           // anything
    }
    v[i] = bits(u);
  }
  return v;
}

// Whether oneDNN converts with the CPU's BF16 instructions (which flush denormals, as ours).
// Its emulation elsewhere rounds denormals instead, so there the comparisons leave them out.
bool native_bf16() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;
}

}  // namespace

TEST_CASE("bf16 conversion: the scalar form on hand-worked values", "[bf16_convert]") {
  struct Case {
    uint32_t in;
    uint16_t out;
  };
  const Case cases[] = {
      {0x3f800000u, 0x3f80},  // 1.0
      {0xbf800000u, 0xbf80},  // -1.0
      {0x3f808000u, 0x3f80},  // a tie: to the even 0x3f80
      {0x3f818000u, 0x3f82},  // a tie: to the even 0x3f82
      {0x3f808001u, 0x3f81},  // just above the tie: up
      {0x3f807fffu, 0x3f80},  // just below: down
      {0x7f7fffffu, 0x7f80},  // the largest float rounds to Inf
      {0x7f800000u, 0x7f80},  // Inf
      {0xff800000u, 0xff80},  // -Inf
      {0x7fc00000u, 0x7fc0},  // quiet NaN
      {0x7f800001u, 0x7fc0},  // signalling NaN, payload only in the low bits: quieted
      {0xffa00000u, 0xffe0},  // signalling NaN with a high payload: quieted, payload kept
      {0x00000000u, 0x0000},  // +0
      {0x80000000u, 0x8000},  // -0
      {0x00400000u, 0x0000},  // denormal: zero
      {0x807fffffu, 0x8000},  // negative denormal: -0
      {0x00800000u, 0x0080},  // the smallest normal
  };
  for (const Case& c : cases) {
    INFO("input bits 0x" << std::hex << c.in);
    CHECK(f32_to_bf16(bits(c.in)) == c.out);
  }
}

TEST_CASE("bf16 conversion: the buffer form equals the scalar form, past no end", "[bf16_convert]") {
  std::printf("bf16 conversion: buffer form = %s\n",
              mnistctl::cpu::cpu_has_avx512bf16() ? "AVX-512 BF16 (vcvtne2ps2bf16)" : "scalar");
  const size_t lengths[] = {0, 1, 15, 16, 17, 31, 32, 33, 47, 64, 1000, 100003, 262144 + 5};
  for (size_t n : lengths)
    for (int threads = 1; threads <= 3; ++threads) {
      const std::vector<float> x = patterns(n, static_cast<uint32_t>(n * 7 + threads));
      std::vector<uint16_t> y(n + 40, 0xabcd);
      f32_to_bf16(x.data(), y.data(), n, threads);
      size_t wrong = 0;
      for (size_t i = 0; i < n; ++i) wrong += y[i] != f32_to_bf16(x[i]);
      size_t past = 0;
      for (size_t i = n; i < y.size(); ++i) past += y[i] != 0xabcd;
      INFO("n " << n << ", threads " << threads);
      CHECK(wrong == 0);
      CHECK(past == 0);
    }
}

TEST_CASE("bf16 conversion: the same bits as oneDNN's reorder", "[bf16_convert]") {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const int64_t n = 4096 + 13;
  std::vector<float> x = patterns(static_cast<size_t>(n), 42);
  std::vector<uint16_t> ours(static_cast<size_t>(n)), theirs(static_cast<size_t>(n));
  using md = dnnl::memory::desc;
  dnnl::memory src(md({n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a), eng, x.data());
  dnnl::memory dst(md({n}, dnnl::memory::data_type::bf16, dnnl::memory::format_tag::a), eng, theirs.data());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  f32_to_bf16(x.data(), ours.data(), static_cast<size_t>(n), 2);
  const bool native = native_bf16();
  size_t differ = 0, nan_both = 0, first = SIZE_MAX, denormals_left_out = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (!native && std::fpclassify(x[i]) == FP_SUBNORMAL) {
      ++denormals_left_out;
      continue;
    }
    // NaN payloads: both must give a NaN; the payload bits oneDNN keeps are its own business.
    const bool nan_ours = (ours[i] & 0x7f80) == 0x7f80 && (ours[i] & 0x7f);
    const bool nan_theirs = (theirs[i] & 0x7f80) == 0x7f80 && (theirs[i] & 0x7f);
    if (nan_ours && nan_theirs) {
      ++nan_both;
      continue;
    }
    if (ours[i] != theirs[i]) {
      ++differ;
      if (first == SIZE_MAX) first = i;
    }
  }
  std::printf("bf16 conversion vs oneDNN reorder: %zu of %zu differ (%zu NaNs on both sides, %zu denormals left "
              "out)\n",
              differ, ours.size(), nan_both, denormals_left_out);
  if (first != SIZE_MAX) {
    uint32_t u;
    std::memcpy(&u, &x[first], sizeof u);
    std::printf("first: input 0x%08x, ours 0x%04x, oneDNN 0x%04x\n", u, ours[first], theirs[first]);
  }
  CHECK(nan_both > 0);
  CHECK(differ == 0);
}

TEST_CASE("bf16 conversion: channels-last to NCHW against its definition", "[bf16_convert]") {
  struct Shape {
    int64_t n, c, hw;
  };
  // LeNet's conv2 input; one channel; planes that end 1 past, 1 short of and at a 32-value step;
  // fewer values than one step.
  const Shape shapes[] = {{5, 20, 144}, {3, 1, 784}, {4, 17, 33}, {2, 3, 31}, {3, 5, 64}, {2, 7, 5}};
  for (const Shape& sh : shapes)
    for (int threads = 1; threads <= 3; ++threads) {
      const size_t total = static_cast<size_t>(sh.n * sh.c * sh.hw);
      const std::vector<float> x = patterns(total, static_cast<uint32_t>(total + threads));
      std::vector<uint16_t> y(total + 40, 0xabcd);
      nhwc_to_nchw_bf16(x.data(), y.data(), sh.n, sh.c, sh.hw, threads);
      size_t wrong = 0, past = 0;
      for (int64_t i = 0; i < sh.n; ++i)
        for (int64_t ch = 0; ch < sh.c; ++ch)
          for (int64_t p = 0; p < sh.hw; ++p)
            wrong += y[static_cast<size_t>((i * sh.c + ch) * sh.hw + p)] !=
                     f32_to_bf16(x[static_cast<size_t>((i * sh.hw + p) * sh.c + ch)]);
      for (size_t i = total; i < y.size(); ++i) past += y[i] != 0xabcd;
      INFO("n " << sh.n << ", c " << sh.c << ", hw " << sh.hw << ", threads " << threads);
      CHECK(wrong == 0);
      CHECK(past == 0);
    }
}

TEST_CASE("bf16 conversion: channels-last to NCHW gives oneDNN's reorder's bits", "[bf16_convert]") {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const int64_t n = 3, c = 20, h = 12, w = 12;
  std::vector<float> x = patterns(static_cast<size_t>(n * c * h * w), 7);
  for (float& v : x) {
    if (std::isnan(v)) v = 1.5f;  // NaN payloads aside (the test above covers them)
    if (!native_bf16() && std::fpclassify(v) == FP_SUBNORMAL) v = 2.5f;  // see native_bf16
  }
  std::vector<uint16_t> ours(x.size()), theirs(x.size());
  using md = dnnl::memory::desc;
  dnnl::memory src(md({n, c, h, w}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc), eng, x.data());
  dnnl::memory dst(md({n, c, h, w}, dnnl::memory::data_type::bf16, dnnl::memory::format_tag::nchw), eng,
                   theirs.data());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  nhwc_to_nchw_bf16(x.data(), ours.data(), n, c, h * w, 2);
  size_t differ = 0;
  for (size_t i = 0; i < ours.size(); ++i) differ += ours[i] != theirs[i];
  std::printf("channels-last to NCHW vs oneDNN reorder: %zu of %zu differ\n", differ, ours.size());
  CHECK(differ == 0);
}
