// Fuzz target: a checkpoint file through model loading, as eval and predict open it (the
// embedded config, the network it declares, the tensor table, binding to a backend). The
// harness rewrites the last four bytes with the CRC-32 of the rest, so that mutations get
// past the checksum to the parsers behind it (the CRC check itself has unit tests).
// The reference backend keeps each input cheap; the memory limits of the fuzzer (see
// scripts/fuzz.sh) turn an input that makes loading allocate without bound into a finding.
#include <unistd.h>
#include <zlib.h>

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "train/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<mnistctl::Backend> be = mnistctl::make_backend("ref");
  std::vector<uint8_t> bytes(data, data + size);
  if (bytes.size() >= 4) {
    uint32_t crc = static_cast<uint32_t>(crc32(0L, bytes.data(), static_cast<uInt>(bytes.size() - 4)));
    for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
  }
  const std::string& path = mnistctl::fuzz::write_scratch("model.ckpt", bytes.data(), bytes.size());
  try {
    mnistctl::Model m = mnistctl::load_model(path, *be, 100);
  } catch (const mnistctl::Error&) {
  }
  unlink(path.c_str());
  return 0;
}
