// Fuzz target: the IDX reader on the bytes as given (raw IDX, or gzip when the input starts
// with the gzip magic), read both as an image file and as a label file.
#include "fuzz/fuzz_util.h"
#include "fuzz/idx_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = mnistctl::fuzz::write_scratch("idx", data, size);
  mnistctl::fuzz::read_idx_both_ways(path);
  return 0;
}
