// Small images as data URIs, so the report's digits travel inside the HTML file: 8-bit
// grayscale PNG (libpng) wrapped in base64.
#pragma once

#include <cstdint>
#include <string>

namespace mnistctl {

// The PNG file bytes of a width x height 8-bit grayscale image (row-major, 0 = black).
std::string encode_png_gray(const uint8_t* pixels, int width, int height);
// RFC 4648 base64 with padding.
std::string base64(const std::string& bytes);
// "data:image/png;base64,..."
std::string png_data_uri(const uint8_t* pixels, int width, int height);

}  // namespace mnistctl
