// User images for predict: PGM/PNG decoding, polarity, pass-through, MNIST-style centring.
#include <catch2/catch.hpp>

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "data/image.h"
#include "data_helpers.h"
#include "test_util.h"

using namespace mnistctl;
using namespace mnistctl::test;

namespace {

void write_pgm_p5(const std::string& path, int w, int h, const Bytes& px, int maxval = 255) {
  std::string head = "P5\n# a comment\n" + std::to_string(w) + " " + std::to_string(h) + "\n" +
                     std::to_string(maxval) + "\n";
  Bytes b(head.begin(), head.end());
  b.insert(b.end(), px.begin(), px.end());
  write_bytes(path, b);
}

void write_pgm_p2(const std::string& path, int w, int h, const Bytes& px) {
  std::string s = "P2\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n";
  for (size_t i = 0; i < px.size(); ++i) s += std::to_string(px[i]) + ((i + 1) % w ? " " : "\n");
  write_bytes(path, Bytes(s.begin(), s.end()));
}

// PNG through libpng's classic writer: any colour type, 8 or 16 bits, no gAMA/sRGB chunk
// (like most files from drawing programs). `samples` holds channels*w*h values.
void write_png(const std::string& path, int w, int h, int color_type, int bit_depth,
               const std::vector<uint16_t>& samples) {
  const int channels = color_type == PNG_COLOR_TYPE_GRAY ? 1
                       : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                       : color_type == PNG_COLOR_TYPE_RGB ? 3 : 4;
  REQUIRE(samples.size() == size_t(channels) * w * h);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  const int bps = bit_depth / 8;
  std::vector<png_byte> rows(size_t(h) * w * channels * bps);
  for (size_t i = 0; i < samples.size(); ++i) {
    if (bps == 1) rows[i] = static_cast<png_byte>(samples[i]);
    else {
      rows[2 * i] = static_cast<png_byte>(samples[i] >> 8);
      rows[2 * i + 1] = static_cast<png_byte>(samples[i] & 0xFF);
    }
  }
  std::vector<png_bytep> ptrs(h);
  for (int y = 0; y < h; ++y) ptrs[y] = rows.data() + size_t(y) * w * channels * bps;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    FAIL("libpng write failed");
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, bit_depth, color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, ptrs.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

std::string error_of(const std::string& path) {
  try {
    load_digit_image(path);
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    return e.what();
  }
  return "";
}

// A 28x28 MNIST-like test pattern: a bright bar on black.
Bytes digit28() {
  Bytes px(784, 0);
  for (int y = 6; y < 22; ++y)
    for (int x = 12; x < 16; ++x) px[y * 28 + x] = static_cast<uint8_t>(150 + 5 * (y - 6));
  px[3 * 28 + 5] = 17;
  return px;
}

Bytes inverted(const Bytes& b) {
  Bytes o(b);
  for (auto& v : o) v = static_cast<uint8_t>(255 - v);
  return o;
}

}  // namespace

TEST_CASE("28x28 images pass through and dark-on-light ones are inverted") {
  std::string dir = scratch_dir("image_28");
  Bytes d = digit28();
  write_pgm_p5(dir + "/light-ink.pgm", 28, 28, d);
  write_pgm_p5(dir + "/dark-ink.pgm", 28, 28, inverted(d));
  write_pgm_p2(dir + "/ascii.pgm", 28, 28, inverted(d));
  CHECK(load_digit_image(dir + "/light-ink.pgm") == d);
  CHECK(load_digit_image(dir + "/dark-ink.pgm") == d);
  CHECK(load_digit_image(dir + "/ascii.pgm") == d);

  // 16-bit PGM (maxval 65535, big-endian samples) scales to 8 bits.
  Bytes wide;
  for (uint8_t v : d) {
    wide.push_back(v);
    wide.push_back(v);  // v * 257
  }
  write_pgm_p5(dir + "/wide.pgm", 28, 28, wide, 65535);
  CHECK(load_digit_image(dir + "/wide.pgm") == d);

  std::vector<uint16_t> g(d.begin(), d.end()), g_inv;
  for (uint8_t v : inverted(d)) g_inv.push_back(v);
  write_png(dir + "/gray8.png", 28, 28, PNG_COLOR_TYPE_GRAY, 8, g);
  CHECK(load_digit_image(dir + "/gray8.png") == d);
  write_png(dir + "/gray8-dark.png", 28, 28, PNG_COLOR_TYPE_GRAY, 8, g_inv);
  CHECK(load_digit_image(dir + "/gray8-dark.png") == d);

  std::vector<uint16_t> g16;
  for (uint8_t v : d) g16.push_back(static_cast<uint16_t>(v * 257));
  write_png(dir + "/gray16.png", 28, 28, PNG_COLOR_TYPE_GRAY, 16, g16);
  Bytes r16 = load_digit_image(dir + "/gray16.png");
  int maxdiff = 0;
  for (int i = 0; i < 784; ++i) maxdiff = std::max(maxdiff, std::abs(int(r16[i]) - int(d[i])));
  WARN("16-bit gray PNG: max difference " << maxdiff);
  CHECK(maxdiff <= 1);

  // RGB with gray pixels: luminance equals the gray value.
  std::vector<uint16_t> rgb, rgba, ga;
  for (uint8_t v : inverted(d)) {
    rgb.insert(rgb.end(), {v, v, v});
    rgba.insert(rgba.end(), {v, v, v, 255});
    ga.insert(ga.end(), {v, 255});
  }
  write_png(dir + "/rgb.png", 28, 28, PNG_COLOR_TYPE_RGB, 8, rgb);
  write_png(dir + "/rgba.png", 28, 28, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba);
  write_png(dir + "/ga.png", 28, 28, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga);
  for (const char* n : {"/rgb.png", "/rgba.png", "/ga.png"}) {
    INFO(n);
    Bytes r = load_digit_image(dir + n);
    int md = 0;
    for (int i = 0; i < 784; ++i) md = std::max(md, std::abs(int(r[i]) - int(d[i])));
    CHECK(md <= 1);
  }
  // Pure colours: green is brighter than blue (luminance, not a plain channel average).
  std::vector<uint16_t> colours;
  for (int i = 0; i < 784; ++i) {
    if (i < 392) colours.insert(colours.end(), {0, 255, 0});
    else colours.insert(colours.end(), {0, 0, 255});
  }
  write_png(dir + "/colours.png", 28, 28, PNG_COLOR_TYPE_RGB, 8, colours);
  Bytes c = load_digit_image(dir + "/colours.png");
  CHECK(int(c[0]) != int(c[783]));
}

TEST_CASE("A larger off-centre digit is cropped and scaled to 20x20 and centred by mass") {
  std::string dir = scratch_dir("image_centre");
  // 300x200, white paper, a black ring (an "0") far from the centre.
  const int w = 300, h = 200;
  Bytes px(w * h, 235);
  const double cx = 230, cy = 60, ro = 40, ri = 26;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      double r = std::hypot(x - cx, (y - cy) * 1.3);
      if (r <= ro && r >= ri) px[y * w + x] = 20;
    }
  write_pgm_p5(dir + "/ring.pgm", w, h, px);
  std::vector<uint16_t> s(px.begin(), px.end());
  write_png(dir + "/ring.png", w, h, PNG_COLOR_TYPE_GRAY, 8, s);

  for (const char* n : {"/ring.pgm", "/ring.png"}) {
    INFO(n);
    Bytes out = load_digit_image(dir + n);
    REQUIRE(out.size() == 784u);
    double m = 0, mx = 0, my = 0;
    int ink_outside = 0, x0 = 28, x1 = -1, y0 = 28, y1 = -1, peak = 0;
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        int v = out[y * 28 + x];
        m += v;
        mx += v * x;
        my += v * y;
        peak = std::max(peak, v);
        if (v > 0) {
          if (x < 4 || x >= 24 || y < 4 || y >= 24) ++ink_outside;
          x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
        }
      }
    double comx = mx / m, comy = my / m;
    WARN(n << ": centre of mass (" << comx << ", " << comy << "), off by " << std::abs(comx - 13.5)
           << ", " << std::abs(comy - 13.5) << "; ink box x " << x0 << ".." << x1 << " y " << y0
           << ".." << y1);
    CHECK(std::abs(comx - 13.5) <= 1.0);
    CHECK(std::abs(comy - 13.5) <= 1.0);
    CHECK(ink_outside == 0);
    CHECK(std::max(x1 - x0 + 1, y1 - y0 + 1) == 20);  // the longer side fills 20 pixels
    CHECK(peak == 255);                                // ink stretched to full strength
    CHECK(out[14 * 28 + 14] == 0);                     // the ring's hole stays empty
  }
}

TEST_CASE("Bad images are refused with the file and the reason") {
  std::string dir = scratch_dir("image_bad");
  auto put = [&](const std::string& name, const std::string& s) {
    write_bytes(dir + "/" + name, Bytes(s.begin(), s.end()));
    return dir + "/" + name;
  };
  std::string p = put("huge.pgm", "P5\n100000 10\n255\n");
  std::string e = error_of(p);
  CHECK(e.find(p + ": image is 100000x10: refused") == 0);
  e = error_of(put("trunc.pgm", "P5\n28 28\n255\nabc"));
  CHECK(e.find("truncated: 28x28 needs 784 bytes of pixels, the file has 3") != std::string::npos);
  e = error_of(put("maxval.pgm", "P2\n2 1\n0\n0 0\n"));
  CHECK(e.find("maximum value 0 is not in 1..65535") != std::string::npos);
  e = error_of(put("above.pgm", "P2\n2 1\n100\n50 101\n"));
  CHECK(e.find("pixel 1 is 101, above the maximum value 100") != std::string::npos);
  e = error_of(put("text.txt", "hello"));
  CHECK(e.find("not a PGM (P5/P2) or PNG image") != std::string::npos);
  e = error_of(put("blank.pgm", "P2\n3 3\n255\n9 9 9 9 9 9 9 9 9\n"));
  CHECK(e.find("no digit found") != std::string::npos);
  e = error_of(dir + "/missing.png");
  CHECK(e.find(dir + "/missing.png: cannot read image") == 0);

  // A PNG whose header claims 20000x20000: refused from the header, before decoding.
  std::vector<uint16_t> one = {0};
  write_png(dir + "/tiny.png", 1, 1, PNG_COLOR_TYPE_GRAY, 8, one);
  Bytes png;
  {
    std::FILE* f = std::fopen((dir + "/tiny.png").c_str(), "rb");
    int c;
    while ((c = std::fgetc(f)) != EOF) png.push_back(static_cast<uint8_t>(c));
    std::fclose(f);
  }
  // IHDR data starts at 16: width, height (big-endian); fix its CRC (covers type + data).
  for (int k : {16, 20}) {
    png[k] = 0, png[k + 1] = 0, png[k + 2] = 0x4E, png[k + 3] = 0x20;
  }
  uLong crc = crc32(0, png.data() + 12, 17);
  png[29] = uint8_t(crc >> 24), png[30] = uint8_t(crc >> 16), png[31] = uint8_t(crc >> 8), png[32] = uint8_t(crc);
  write_bytes(dir + "/huge.png", png);
  e = error_of(dir + "/huge.png");
  CHECK(e.find("image is 20000x20000: refused") != std::string::npos);
  Bytes cut(png.begin(), png.begin() + 20);
  write_bytes(dir + "/cut.png", cut);
  e = error_of(dir + "/cut.png");
  CHECK(e.find(dir + "/cut.png: PNG: ") == 0);
}

TEST_CASE("Blank images are refused as 'no digit found' whatever their size") {
  std::string dir = scratch_dir("image_blank");
  // Blank: one value everywhere, or noise weaker than the ink threshold (kMinInkContrast).
  struct Blank {
    const char* name;
    uint8_t base;
    int noise;  // added to every 7th pixel
  };
  for (Blank b : {Blank{"white", 255, 0}, Blank{"black", 0, 0}, Blank{"grey", 128, 0},
                  Blank{"faint-noise-dark", 0, 12}, Blank{"faint-noise-light", 240, -12}}) {
    for (int side : {28, 100}) {
      Bytes px(side * side, b.base);
      for (size_t i = 0; i < px.size(); i += 7) px[i] = static_cast<uint8_t>(b.base + b.noise);
      std::string path = dir + "/" + b.name + "-" + std::to_string(side) + ".pgm";
      write_pgm_p5(path, side, side, px);
      std::string e = error_of(path);
      INFO(path << ": " << e);
      CHECK(e.find(path + ": no digit found: ") == 0);
    }
  }
  // PNG too (the check is after decoding, in prepare_digit).
  std::vector<uint16_t> white(784, 255);
  write_png(dir + "/white.png", 28, 28, PNG_COLOR_TYPE_GRAY, 8, white);
  CHECK(error_of(dir + "/white.png").find(dir + "/white.png: no digit found: ") == 0);

  // Just above the threshold is still a digit, at 28x28 and at other sizes: the rule is
  // the same for both.
  for (int side : {28, 100}) {
    Bytes px(side * side, 0);
    for (int y = side / 4; y < 3 * side / 4; ++y) px[y * side + side / 2] = 20;
    std::string path = dir + "/faint-digit-" + std::to_string(side) + ".pgm";
    write_pgm_p5(path, side, side, px);
    INFO(path);
    Bytes out = load_digit_image(path);
    CHECK(out.size() == 784u);
    CHECK(*std::max_element(out.begin(), out.end()) == (side == 28 ? 20 : 255));
  }
}
