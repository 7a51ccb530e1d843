// Fuzz target: the IDX reader's gzip path. The input is the uncompressed file; the harness
// gzips it, so mutations reach the IDX header and body behind the inflater (the `idx`
// target mutates compressed bytes directly, which mostly exercises zlib's own checks).
#include <zlib.h>

#include <cstdlib>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "fuzz/idx_target.h"

namespace {

std::vector<uint8_t> gzip(const uint8_t* data, size_t size) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::vector<uint8_t> out(deflateBound(&z, static_cast<uLong>(size)) + 32);
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> gz = gzip(data, size);
  const std::string& path = mnistctl::fuzz::write_scratch("idx.gz", gz.data(), gz.size());
  mnistctl::fuzz::read_idx_both_ways(path);
  return 0;
}
