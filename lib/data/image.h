// The user's own digits for `mnistctl predict`: PGM (P5 binary, P2 ASCII) or PNG (libpng:
// gray, gray+alpha, palette, RGB/RGBA -> luminance (Rec. 709 weights), 8 or 16 bits; alpha is
// composited onto white).
//
// The result is what the network was trained on: 28x28 uint8, 0 = background, 255 = ink.
//  * Polarity: dark ink on a light background (the mean of the border pixels is above
//    mid-gray) is inverted.
//  * No ink: an image whose strongest pixel (after the polarity decision) is less than
//    kMinInkContrast (16 of 255, about 6%) above the background (the border's mean) is
//    refused, whatever its size: "<file>: no digit found: ..." (UsageError). Blank, all-white,
//    all-black and uniform grey images are never classified.
//  * A 28x28 image is then used as is.
//  * Any other size is prepared the way MNIST was made: background levelled to 0 and the ink
//    stretched to 255, cropped to the ink's bounding box, scaled with area averaging
//    (anti-aliased, aspect kept) to fit in 20x20, and pasted into 28x28 so that the centre of
//    mass lands on the centre (shifted by whole pixels, never pushed out of the frame).
// Dimensions are checked before anything is allocated (at most 16384 per side and 64 M
// pixels). Errors are UsageError naming the file and what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

std::vector<uint8_t> load_digit_image(const std::string& path);

// The steps behind load_digit_image, for tests and other callers: an 8-bit gray image
// (row-major, 0 = black) -> 28x28 MNIST-style. `what` names the source in errors.
std::vector<uint8_t> prepare_digit(const std::vector<uint8_t>& gray, int64_t width,
                                   int64_t height, const std::string& what);

constexpr int64_t kImageMaxSide = 16384;
// The least ink (brightest pixel minus the background, 0..255 after the polarity decision)
// that counts as a digit; below it the image is refused as blank.
constexpr float kMinInkContrast = 16.0f;
constexpr int64_t kImageMaxPixels = int64_t(1) << 26;

}  // namespace mnistctl
