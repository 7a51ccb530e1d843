// User images for predict: PGM/PNG decoding, the budget, polarity, and the one MNIST-style
// preprocessing every size goes through (28x28 included).
#include <catch2/catch.hpp>

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <tuple>

#include "core/error.h"
#include "data/idx.h"
#include "data/image.h"
#include "data_helpers.h"
#include "test_util.h"
#include "usage_error.h"

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
  return usage_error_from([&] { load_digit_image(path); }, "load_digit_image(" + path + ")");
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

TEST_CASE("PGM and PNG decode to the stored gray values, and dark-on-light is inverted") {
  std::string dir = scratch_dir("image_28");
  Bytes d = digit28();
  write_pgm_p5(dir + "/light-ink.pgm", 28, 28, d);
  write_pgm_p5(dir + "/dark-ink.pgm", 28, 28, inverted(d));
  write_pgm_p2(dir + "/ascii.pgm", 28, 28, inverted(d));
  GrayImage g28 = decode_gray_image(dir + "/light-ink.pgm");
  CHECK(g28.width == 28);
  CHECK(g28.height == 28);
  CHECK(g28.pixels == d);                                          // as stored (what --raw feeds)
  CHECK(decode_gray_image(dir + "/ascii.pgm").pixels == inverted(d));  // no inversion before preparing
  // Prepared, both polarities give the same digit.
  const Bytes prepared = load_digit_image(dir + "/light-ink.pgm");
  CHECK(load_digit_image(dir + "/dark-ink.pgm") == prepared);
  CHECK(load_digit_image(dir + "/ascii.pgm") == prepared);
  CHECK(prepared == prepare_digit(d, 28, 28, "digit"));
  // Each decoder below: the gray values stored in the file come back.
  auto gray = [](const std::string& path) { return decode_gray_image(path).pixels; };

  // 16-bit PGM (maxval 65535, big-endian samples) scales to 8 bits.
  Bytes wide;
  for (uint8_t v : d) {
    wide.push_back(v);
    wide.push_back(v);  // v * 257
  }
  write_pgm_p5(dir + "/wide.pgm", 28, 28, wide, 65535);
  CHECK(gray(dir + "/wide.pgm") == d);

  std::vector<uint16_t> g(d.begin(), d.end()), g_inv;
  for (uint8_t v : inverted(d)) g_inv.push_back(v);
  write_png(dir + "/gray8.png", 28, 28, PNG_COLOR_TYPE_GRAY, 8, g);
  CHECK(gray(dir + "/gray8.png") == d);
  write_png(dir + "/gray8-dark.png", 28, 28, PNG_COLOR_TYPE_GRAY, 8, g_inv);
  CHECK(gray(dir + "/gray8-dark.png") == inverted(d));
  CHECK(load_digit_image(dir + "/gray8-dark.png") == prepared);

  std::vector<uint16_t> g16;
  for (uint8_t v : d) g16.push_back(static_cast<uint16_t>(v * 257));
  write_png(dir + "/gray16.png", 28, 28, PNG_COLOR_TYPE_GRAY, 16, g16);
  Bytes r16 = gray(dir + "/gray16.png");
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
    Bytes r = gray(dir + n);
    Bytes want = inverted(d);
    int md = 0;
    for (int i = 0; i < 784; ++i) md = std::max(md, std::abs(int(r[i]) - int(want[i])));
    CHECK(md <= 1);
  }
  // Pure colours: green is brighter than blue (luminance, not a plain channel average).
  std::vector<uint16_t> colours;
  for (int i = 0; i < 784; ++i) {
    if (i < 392) colours.insert(colours.end(), {0, 255, 0});
    else colours.insert(colours.end(), {0, 0, 255});
  }
  write_png(dir + "/colours.png", 28, 28, PNG_COLOR_TYPE_RGB, 8, colours);
  Bytes c = gray(dir + "/colours.png");
  CHECK(int(c[0]) == 182);  // 0.7152 * 255
  CHECK(int(c[783]) == 18);  // 0.0722 * 255
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
  p = put("empty.pgm", "P5\n0 0\n255\n");
  CHECK(error_of(p) == p + ": image is 0x0: an image needs at least one pixel each way");
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
    CHECK(*std::max_element(out.begin(), out.end()) == 255);  // levelled, whatever the size
  }
}

TEST_CASE("The image budget is checked from the header, and the refusal names the file and the limit") {
  std::string dir = scratch_dir("image_budget");
  auto header_only = [&](const std::string& name, const std::string& head) {
    write_bytes(dir + "/" + name, Bytes(head.begin(), head.end()));
    return dir + "/" + name;
  };
  // Over the pixel count (2049x2048 > 4 M), over a side (4097), each from the header alone.
  for (const auto& [name, head, size] :
       {std::tuple<std::string, std::string, std::string>{"wide.pgm", "P5\n4097 10\n255\n", "4097x10"},
        {"big.pgm", "P5\n2049 2048\n255\n", "2049x2048"},
        {"big-ascii.pgm", "P2\n2048 2049\n255\n", "2048x2049"}}) {
    std::string p = header_only(name, head);
    std::string e = error_of(p);
    INFO(e);
    CHECK(e == p + ": image is " + size + ": refused: a digit image may have at most 4096 pixels "
                   "per side and 4 megapixels in all (scale it down first)");
  }
  // A file over 32 MiB is refused before it is read (a sparse file: no disk is used).
  std::string big = header_only("huge-file.pgm", "P5\n28 28\n255\n");
  std::filesystem::resize_file(big, (uint64_t(32) << 20) + 1);
  CHECK(error_of(big) == big + ": image file is 33554433 bytes: refused (an image file may be at most 32 MiB)");
  // At the budget: accepted.
  Bytes px(size_t(2048) * 2048, 255);
  for (int y = 500; y < 1500; ++y)
    for (int x = 900; x < 1100; ++x) px[size_t(y) * 2048 + x] = 0;
  write_pgm_p5(dir + "/at-budget.pgm", 2048, 2048, px);
  Bytes out = load_digit_image(dir + "/at-budget.pgm");
  CHECK(*std::max_element(out.begin(), out.end()) == 255);
  // Not a regular file: refused without opening (a FIFO would block the reader).
  CHECK(error_of(dir).find(dir + ": cannot read image: not a regular file") == 0);
}

namespace {
// Box, centre of mass and total ink of a 28x28 digit.
struct Ink {
  int x0 = 28, y0 = 28, x1 = -1, y1 = -1;
  double cx = 0, cy = 0, mass = 0;
};
Ink ink_of(const Bytes& px) {
  Ink k;
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x)
      if (int v = px[y * 28 + x]; v > 0) {
        k.x0 = std::min(k.x0, x), k.x1 = std::max(k.x1, x), k.y0 = std::min(k.y0, y), k.y1 = std::max(k.y1, y);
        k.mass += v, k.cx += v * x, k.cy += v * y;
      }
  if (k.mass > 0) k.cx /= k.mass, k.cy /= k.mass;
  return k;
}
}  // namespace

TEST_CASE("A 28x28 digit goes through the same preprocessing: off-centre comes out centred") {
  const std::string mnist = mnist_dir();
  if (mnist.empty()) FAIL("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
  IdxImages test = read_idx_images(mnist + "/t10k-images-idx3-ubyte.gz");
  for (int k : {0, 1, 2, 3, 4}) {  // a 7, a 2, a 1, a 0, a 4
    INFO("test image " << k);
    Bytes digit(test.pixels.begin() + k * 784, test.pixels.begin() + (k + 1) * 784);
    // Move the ink's box into the top-left corner.
    Ink o = ink_of(digit);
    Bytes corner(784, 0);
    for (int y = o.y0; y <= o.y1; ++y)
      for (int x = o.x0; x <= o.x1; ++x) corner[(y - o.y0) * 28 + x - o.x0] = digit[y * 28 + x];
    REQUIRE(corner != digit);
    const Bytes a = prepare_digit(digit, 28, 28, "centred"), b = prepare_digit(corner, 28, 28, "corner");
    CHECK(a == b);  // where the digit was drawn does not matter
    Ink p = ink_of(b);
    WARN("test image " << k << ": corner copy prepared: centre of mass (" << p.cx << ", " << p.cy
                       << "), box " << p.x1 - p.x0 + 1 << "x" << p.y1 - p.y0 + 1);
    CHECK(std::abs(p.cx - 13.5) <= 1.0);
    CHECK(std::abs(p.cy - 13.5) <= 1.0);
    CHECK(std::max(p.x1 - p.x0 + 1, p.y1 - p.y0 + 1) == 20);
    // MNIST's own digits are already made this way: preparing one changes it little (up to a
    // shift of a pixel, as the centre of mass is rounded to whole pixels).
    double best = 0;
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        double dot = 0, na = 0, nb = 0;
        for (int y = 1; y < 27; ++y)
          for (int x = 1; x < 27; ++x) {
            double u = a[y * 28 + x], v = digit[(y + dy) * 28 + x + dx];
            dot += u * v, na += u * u, nb += v * v;
          }
        best = std::max(best, dot / std::sqrt(na * nb));
      }
    WARN("cosine similarity to the original: " << best);
    CHECK(best > 0.9);
  }
}
