// Decoding of user images within a budget, and their MNIST-style preparation (see image.h).
#include "data/image.h"

#include <algorithm>
#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <png.h>

#include "core/error.h"
#include "core/fs.h"

namespace mnistctl {
namespace {

void check_size(const std::string& path, int64_t w, int64_t h) {
  if (w < 1 || h < 1)
    throw UsageError(fmt::format("{}: image is {}x{}: an image needs at least one pixel each way", path, w, h));
  if (w > kImageMaxSide || h > kImageMaxSide || w * h > kImageMaxPixels)
    throw UsageError(fmt::format(
        "{}: image is {}x{}: refused: a digit image may have at most {} pixels per side and {} "
        "megapixels in all (scale it down first)", path, w, h, kImageMaxSide,
        kImageMaxPixels >> 20));
}

// ---- PGM --------------------------------------------------------------------------------
struct PgmParser {
  const std::vector<uint8_t>& d;
  const std::string& path;
  size_t pos = 0;

  void skip_space_and_comments() {
    while (pos < d.size()) {
      if (d[pos] == '#') {
        while (pos < d.size() && d[pos] != '\n') ++pos;
      } else if (std::isspace(d[pos])) {
        ++pos;
      } else {
        break;
      }
    }
  }
  int64_t number(const char* field) {
    skip_space_and_comments();
    if (pos >= d.size() || !std::isdigit(d[pos]))
      throw UsageError(fmt::format("{}: PGM: expected the {} (a number) at byte {}", path, field, pos));
    int64_t v = 0;
    while (pos < d.size() && std::isdigit(d[pos])) {
      v = v * 10 + (d[pos++] - '0');
      if (v > (int64_t(1) << 31))
        throw UsageError(fmt::format("{}: PGM: the {} is too large", path, field));
    }
    return v;
  }
};

std::vector<uint8_t> decode_pgm(const std::vector<uint8_t>& d, const std::string& path,
                                int64_t& w, int64_t& h) {
  PgmParser p{d, path, 2};
  bool binary = d[1] == '5';
  w = p.number("width");
  h = p.number("height");
  check_size(path, w, h);
  int64_t maxval = p.number("maximum value");
  if (maxval < 1 || maxval > 65535)
    throw UsageError(fmt::format("{}: PGM: maximum value {} is not in 1..65535", path, maxval));
  const int64_t n = w * h;
  std::vector<uint8_t> out(static_cast<size_t>(n));
  auto scale = [&](int64_t v) { return static_cast<uint8_t>((v * 255 + maxval / 2) / maxval); };
  if (binary) {
    if (p.pos >= d.size() || !std::isspace(d[p.pos]))
      throw UsageError(fmt::format("{}: PGM: expected one whitespace byte after the header", path));
    ++p.pos;
    const int64_t bpp = maxval < 256 ? 1 : 2;
    const int64_t have = static_cast<int64_t>(d.size() - p.pos);
    if (have < n * bpp)
      throw UsageError(fmt::format("{}: PGM: truncated: {}x{} needs {} bytes of pixels, the file "
                                   "has {}", path, w, h, n * bpp, have));
    const uint8_t* px = d.data() + p.pos;
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = bpp == 1 ? px[i] : (int64_t(px[2 * i]) << 8) | px[2 * i + 1];
      if (v > maxval)
        throw UsageError(fmt::format("{}: PGM: pixel {} is {}, above the maximum value {}", path,
                                     i, v, maxval));
      out[static_cast<size_t>(i)] = scale(v);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      p.skip_space_and_comments();
      if (p.pos >= d.size())
        throw UsageError(fmt::format("{}: PGM: truncated: {}x{} needs {} pixels, found {}", path,
                                     w, h, n, i));
      int64_t v = p.number("pixel value");
      if (v > maxval)
        throw UsageError(fmt::format("{}: PGM: pixel {} is {}, above the maximum value {}", path,
                                     i, v, maxval));
      out[static_cast<size_t>(i)] = scale(v);
    }
  }
  return out;
}

// ---- PNG (libpng, classic API) ------------------------------------------------------------
// The classic API rather than the simplified one: the simplified reader treats 16-bit data as
// linear light and gamma-encodes it on the way to 8 bits, which changes the values a drawing
// program wrote. Here samples are only rescaled (16 -> 8 bits), RGB becomes luminance with
// the Rec. 709 weights, and alpha is composited onto white by hand.
struct PngReader {
  const std::vector<uint8_t>* data;
  size_t pos = 0;
  char error[256] = {0};
  jmp_buf jump;
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->error, sizeof r->error, "%s", msg);
  std::longjmp(r->jump, 1);
}
void png_on_warning(png_structp, png_const_charp) {}
void png_on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > r->data->size() - r->pos) png_error(png, "truncated file");
  std::memcpy(out, r->data->data() + r->pos, n);
  r->pos += n;
}

std::vector<uint8_t> decode_png(const std::vector<uint8_t>& d, const std::string& path,
                                int64_t& w, int64_t& h) {
  // Everything that must survive a longjmp lives before setjmp and is only written through
  // pointers (heap memory), so its value is well defined afterwards.
  PngReader r;
  r.data = &d;
  std::vector<uint8_t> rows;
  std::vector<png_bytep> row_ptrs;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_on_error, png_on_warning);
  if (!png) throw RuntimeError(fmt::format("{}: libpng could not start", path));
  png_infop info = png_create_info_struct(png);
  struct Guard {
    png_structp* p;
    png_infop* i;
    ~Guard() { png_destroy_read_struct(p, i, nullptr); }
  } guard{&png, &info};
  if (!info) throw RuntimeError(fmt::format("{}: libpng could not start", path));
  if (setjmp(r.jump)) throw UsageError(fmt::format("{}: PNG: {}", path, r.error));

  png_set_read_fn(png, &r, png_on_read);
  // Ancillary chunks (text, ICC profiles) are decompressed by libpng into memory of its own:
  // bound them so that a small file can't expand into a large allocation.
  png_set_chunk_malloc_max(png, 1 << 20);
  png_set_chunk_cache_max(png, 128);
  png_read_info(png, info);
  const png_uint_32 pw = png_get_image_width(png, info), ph = png_get_image_height(png, info);
  check_size(path, pw, ph);  // before any pixel memory

  const int color = png_get_color_type(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (png_get_bit_depth(png, info) == 16) png_set_scale_16(png);
  if (color & PNG_COLOR_MASK_COLOR) png_set_rgb_to_gray_fixed(png, 1, -1, -1);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  const int channels = png_get_channels(png, info);  // 1 (gray) or 2 (gray + alpha)
  const size_t stride = png_get_rowbytes(png, info);
  if (channels < 1 || channels > 2 || stride != size_t(pw) * channels)
    throw UsageError(fmt::format("{}: PNG: unsupported pixel layout", path));
  rows.resize(stride * ph);
  row_ptrs.resize(ph);
  for (png_uint_32 y = 0; y < ph; ++y) row_ptrs[y] = rows.data() + y * stride;
  png_read_image(png, row_ptrs.data());
  png_read_end(png, nullptr);

  w = pw;
  h = ph;
  std::vector<uint8_t> out(size_t(pw) * ph);
  for (size_t i = 0; i < out.size(); ++i) {
    if (channels == 1) {
      out[i] = rows[i];
    } else {
      // Transparent is paper: composite onto white.
      int v = rows[2 * i], a = rows[2 * i + 1];
      out[i] = static_cast<uint8_t>((v * a + 255 * (255 - a) + 127) / 255);
    }
  }
  return out;
}

// ---- Resampling ---------------------------------------------------------------------------
// One axis: for each output index, the source indices and weights. Shrinking averages the
// covered source area (anti-aliased); enlarging interpolates linearly.
struct Tap {
  int64_t src;
  float w;
};
std::vector<std::vector<Tap>> axis_weights(int64_t n_src, int64_t n_dst) {
  std::vector<std::vector<Tap>> taps(static_cast<size_t>(n_dst));
  const double r = static_cast<double>(n_src) / static_cast<double>(n_dst);
  for (int64_t j = 0; j < n_dst; ++j) {
    auto& t = taps[static_cast<size_t>(j)];
    if (r >= 1.0) {
      double a = j * r, b = (j + 1) * r;
      for (int64_t i = static_cast<int64_t>(a); i < n_src && i < b; ++i) {
        double cover = std::min<double>(b, i + 1) - std::max<double>(a, i);
        if (cover > 0) t.push_back({i, static_cast<float>(cover / r)});
      }
    } else {
      double c = std::clamp((j + 0.5) * r - 0.5, 0.0, static_cast<double>(n_src - 1));
      int64_t i0 = static_cast<int64_t>(c);
      int64_t i1 = std::min(i0 + 1, n_src - 1);
      float f = static_cast<float>(c - i0);
      t.push_back({i0, 1.0f - f});
      if (i1 != i0) t.push_back({i1, f});
    }
  }
  return taps;
}

std::vector<float> resample(const std::vector<float>& src, int64_t sw, int64_t sh, int64_t dw,
                            int64_t dh) {
  auto tx = axis_weights(sw, dw), ty = axis_weights(sh, dh);
  std::vector<float> mid(static_cast<size_t>(dw * sh), 0.0f);
  for (int64_t y = 0; y < sh; ++y)
    for (int64_t x = 0; x < dw; ++x) {
      float s = 0;
      for (const Tap& t : tx[static_cast<size_t>(x)]) s += t.w * src[static_cast<size_t>(y * sw + t.src)];
      mid[static_cast<size_t>(y * dw + x)] = s;
    }
  std::vector<float> out(static_cast<size_t>(dw * dh), 0.0f);
  for (int64_t y = 0; y < dh; ++y)
    for (const Tap& t : ty[static_cast<size_t>(y)])
      for (int64_t x = 0; x < dw; ++x)
        out[static_cast<size_t>(y * dw + x)] += t.w * mid[static_cast<size_t>(t.src * dw + x)];
  return out;
}

uint8_t to_u8(float v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

std::vector<uint8_t> prepare_digit(const std::vector<uint8_t>& gray, int64_t w, int64_t h,
                                   const std::string& what, Framing framing) {
  const bool item = framing == Framing::item;
  check_size(what, w, h);
  if (static_cast<int64_t>(gray.size()) != w * h)
    throw UsageError(fmt::format("{}: {} pixels for a {}x{} image", what, gray.size(), w, h));

  // Polarity and background from the border: MNIST is light ink on black. The median, not the
  // mean, so that a digit touching the frame (drawn in a corner) does not shift the background.
  std::vector<uint8_t> edge;
  edge.reserve(static_cast<size_t>(2 * (w + h)));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      if (y == 0 || x == 0 || y == h - 1 || x == w - 1) edge.push_back(gray[static_cast<size_t>(y * w + x)]);
  std::nth_element(edge.begin(), edge.begin() + static_cast<std::ptrdiff_t>(edge.size() / 2), edge.end());
  const double border = edge[edge.size() / 2];
  const bool invert = border > 127.5;

  // Ink, after the polarity decision: pixels brighter than the background (the border's
  // median). The same test for every size, 28x28 included: a blank, uniform or nearly uniform
  // image is not a digit, and classifying it would be a silently wrong answer.
  std::vector<float> g(gray.size());
  float mx = 0;
  for (size_t i = 0; i < gray.size(); ++i) {
    g[i] = invert ? 255.0f - gray[i] : gray[i];
    mx = std::max(mx, g[i]);
  }
  const float bg = static_cast<float>(invert ? 255.0 - border : border);
  if (mx - bg < kMinInkContrast)
    throw UsageError(fmt::format("{}: no {} found: the image has nothing that stands out from "
                                 "its background (contrast {:.0f} of 255, at least {:.0f} needed)",
                                 what, item ? "item" : "digit", std::max(0.0f, mx - bg), kMinInkContrast));

  // Level: background -> 0, the strongest ink -> 255.
  for (auto& v : g) v = std::clamp((v - bg) / (mx - bg), 0.0f, 1.0f) * 255.0f;

  // Crop to the ink's bounding box (ink: above 10% after levelling, ignoring faint noise; an
  // item's faint parts, a pale sleeve, are part of it: 5%).
  const float ink = item ? 12.75f : 25.5f;
  int64_t x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      if (g[static_cast<size_t>(y * w + x)] > ink) {
        x0 = std::min(x0, x);
        x1 = std::max(x1, x);
        y0 = std::min(y0, y);
        y1 = std::max(y1, y);
      }
  const int64_t bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  std::vector<float> crop(static_cast<size_t>(bw * bh));
  for (int64_t y = 0; y < bh; ++y)
    for (int64_t x = 0; x < bw; ++x)
      crop[static_cast<size_t>(y * bw + x)] = g[static_cast<size_t>((y + y0) * w + x + x0)];

  // Fit in 20x20 (a digit) or 28x28 (an item), aspect kept.
  const int64_t side = item ? 28 : 20;
  const double s = static_cast<double>(side) / static_cast<double>(std::max(bw, bh));
  const int64_t nw = std::clamp<int64_t>(std::lround(bw * s), 1, side);
  const int64_t nh = std::clamp<int64_t>(std::lround(bh * s), 1, side);
  std::vector<float> small = resample(crop, bw, bh, nw, nh);

  // Where the box goes in the 28x28 field: an item's box centred; a digit's centre of mass on
  // the field's centre (13.5 in pixel-index coordinates), by whole pixels, kept in the frame.
  int64_t ox = (28 - nw) / 2, oy = (28 - nh) / 2;
  if (!item) {
    double m = 0, mx_ = 0, my_ = 0;
    for (int64_t y = 0; y < nh; ++y)
      for (int64_t x = 0; x < nw; ++x) {
        double v = small[static_cast<size_t>(y * nw + x)];
        m += v;
        mx_ += v * x;
        my_ += v * y;
      }
    const double cx = m > 0 ? mx_ / m : (nw - 1) / 2.0, cy = m > 0 ? my_ / m : (nh - 1) / 2.0;
    ox = std::clamp<int64_t>(std::lround(13.5 - cx), 0, 28 - nw);
    oy = std::clamp<int64_t>(std::lround(13.5 - cy), 0, 28 - nh);
  }
  std::vector<uint8_t> out(28 * 28, 0);
  for (int64_t y = 0; y < nh; ++y)
    for (int64_t x = 0; x < nw; ++x)
      out[static_cast<size_t>((y + oy) * 28 + x + ox)] = to_u8(small[static_cast<size_t>(y * nw + x)]);
  return out;
}

GrayImage decode_gray_image(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    throw UsageError(fmt::format("{}: cannot read image: {}",
                                 path, ec ? ec.message() : "No such file or directory"));
  if (!std::filesystem::is_regular_file(status))
    throw UsageError(fmt::format("{}: cannot read image: not a regular file", path));
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw UsageError(fmt::format("{}: cannot read image: {}", path, ec.message()));
  // The largest legitimate file within the pixel budget (a 4-megapixel 16-bit ASCII PGM) is
  // smaller than this; refuse before reading.
  if (size > static_cast<uint64_t>(kImageMaxFileBytes))
    throw UsageError(fmt::format("{}: image file is {} bytes: refused (an image file may be at "
                                 "most {} MiB)", path, size, kImageMaxFileBytes >> 20));
  std::vector<uint8_t> d = read_file(path);
  GrayImage img;
  if (d.size() >= 8 && png_sig_cmp(d.data(), 0, 8) == 0) {
    img.pixels = decode_png(d, path, img.width, img.height);
  } else if (d.size() >= 2 && d[0] == 'P' && (d[1] == '5' || d[1] == '2')) {
    img.pixels = decode_pgm(d, path, img.width, img.height);
  } else {
    throw UsageError(fmt::format("{}: not a PGM (P5/P2) or PNG image", path));
  }
  return img;
}

std::vector<uint8_t> load_digit_image(const std::string& path, Framing framing) {
  GrayImage img = decode_gray_image(path);
  return prepare_digit(img.pixels, img.width, img.height, path, framing);
}

}  // namespace mnistctl
