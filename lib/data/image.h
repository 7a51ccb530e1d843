// The user's own digits for `mnistctl predict`: PGM (P5 binary, P2 ASCII) or PNG (libpng:
// gray, gray+alpha, palette, RGB/RGBA -> luminance (Rec. 709 weights), 8 or 16 bits; alpha is
// composited onto white).
//
// One preprocessing for every picture, whatever its size (28x28 included), MNIST's own
// recipe (docs/predict.md): the result is 28x28 uint8, 0 = background, 255 = ink.
//  * Polarity: dark ink on a light background (the median of the border pixels, the
//    background, is above mid-gray) is inverted.
//  * No ink: an image whose strongest pixel (after the polarity decision) is less than
//    kMinInkContrast (16 of 255, about 6%) above the background (the border's median) is
//    refused: "<file>: no digit found: ..." (UsageError). Blank, all-white, all-black and
//    uniform grey images are never classified.
//  * Level: background to 0, the strongest ink to 255.
//  * Framing, by the model's dataset (Framing):
//    - digit (MNIST): crop to the ink's bounding box (pixels above 10% after levelling), scale
//      it with area averaging (or linear interpolation when enlarging) so that its longer side
//      is 20 pixels, aspect kept, and paste it into 28x28 so that its centre of mass lands on
//      the centre (shifted by whole pixels, never pushed out of the frame).
//    - item (Fashion-MNIST, whose items fill the frame): crop to the item's bounding box
//      (above 5%), scale its longer side to 28, aspect kept, and centre the box. (Zalando's
//      recipe also sharpens after scaling; that step is not reproduced.)
// `predict --raw` skips all of this (decode_gray_image only).
//
// Budget: the size is read from the header and checked before any pixel memory is taken: at
// most kImageMaxSide pixels per side and kImageMaxPixels in all (a digit needs far fewer), and
// files of at most kImageMaxFileBytes (checked before the file is read). PNG ancillary chunks
// are limited too. Errors are UsageError naming the file and the limit or what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

// 8-bit gray, row-major, 0 = black: what a file holds, before any preprocessing.
struct GrayImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

// Decodes a PGM or PNG file (by content, not name) to 8-bit gray, within the budget.
GrayImage decode_gray_image(const std::string& path);

// How a picture is framed in 28x28 (see above): as MNIST frames its digits, or as
// Fashion-MNIST frames its items.
enum class Framing { digit, item };

// decode_gray_image + prepare_digit.
std::vector<uint8_t> load_digit_image(const std::string& path, Framing framing = Framing::digit);

// The preprocessing above: an 8-bit gray image -> 28x28 MNIST-style. `what` names the
// source in errors.
std::vector<uint8_t> prepare_digit(const std::vector<uint8_t>& gray, int64_t width,
                                   int64_t height, const std::string& what, Framing framing = Framing::digit);

// The budget (see above). 4 megapixels is a 2048x2048 scan; a photo from a phone is larger and
// must be scaled down first.
constexpr int64_t kImageMaxSide = 4096;
constexpr int64_t kImageMaxPixels = int64_t(1) << 22;     // 4 M pixels
constexpr int64_t kImageMaxFileBytes = int64_t(32) << 20;  // 32 MiB
// The least ink (brightest pixel minus the background, 0..255 after the polarity decision)
// that counts as a digit; below it the image is refused as blank.
constexpr float kMinInkContrast = 16.0f;

}  // namespace mnistctl
