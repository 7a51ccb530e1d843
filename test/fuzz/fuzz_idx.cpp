// Fuzz target: the IDX reader on the bytes as given (raw IDX, or gzip when the input starts
// with the gzip magic), read both as an image file and as a label file.
#include <unistd.h>

#include "core/error.h"
#include "data/idx.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = mnistctl::fuzz::write_scratch("idx", data, size);
  try {
    mnistctl::IdxImages im = mnistctl::read_idx_images(path);
    if (static_cast<int64_t>(im.pixels.size()) != im.count * im.rows * im.cols) __builtin_trap();
  } catch (const mnistctl::Error&) {
  }
  try {
    (void)mnistctl::read_idx_labels(path, 10);
  } catch (const mnistctl::Error&) {
  }
  unlink(path.c_str());
  return 0;
}
