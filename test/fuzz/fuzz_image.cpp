// Fuzz target: the user-image decoders behind `mnistctl predict --input` (PNG through libpng,
// PGM P5/P2 of our own), chosen by the file's magic as load_digit_image chooses, then the
// MNIST-style preparation (crop, scale, centre) of whatever decoded.
#include <unistd.h>

#include "core/error.h"
#include "data/image.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = mnistctl::fuzz::write_scratch("digit.img", data, size);
  try {
    std::vector<uint8_t> img = mnistctl::load_digit_image(path);
    if (img.size() != 28 * 28) __builtin_trap();
  } catch (const mnistctl::Error&) {
  }
  unlink(path.c_str());
  return 0;
}
