// IDX files (the MNIST format): a big-endian header -- magic 0x0000TTNN (TT = element type,
// 0x08 = uint8; NN = number of dimensions), then NN uint32 extents -- then the elements.
//
// Files may be gzip-compressed or raw (detected by the gzip magic, not the name). Everything is
// validated before it is trusted: the magic, the number of dimensions, every declared extent
// against the bytes really present (a header that declares 2^31 images is refused before any
// memory is allocated; gzip is decompressed as a stream into a buffer that only grows as real
// data arrives), truncated or corrupt gzip, trailing data, and labels below the class count.
// Each failure is a UsageError naming the file and what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

class ByteReader;

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count*rows*cols, row-major, 0 = background, 255 = ink
};

// The extents an IDX header declares (count first; ndims 3 for images, 1 for labels), checked
// as read_idx_* checks them, without reading the data: a gzip file inflates only its header.
std::vector<int64_t> read_idx_header(const std::string& path, int ndims);
// The same checks over an open reader, left just after the header, for readers that take the
// elements in pieces (idx_stream.h); a raw file's size must also match the extents exactly.
std::vector<int64_t> read_idx_header(ByteReader& in, int ndims);

// Magic 0x00000803: uint8, 3 dimensions (count, rows, cols).
IdxImages read_idx_images(const std::string& path);
// Magic 0x00000801: uint8, 1 dimension. Every label must be below num_classes.
std::vector<uint8_t> read_idx_labels(const std::string& path, int num_classes = 10);

// The most element bytes one IDX file may hold (2 GiB, 40x the MNIST training images): a
// bound on what a header can make us allocate.
constexpr int64_t kIdxMaxBytes = int64_t(1) << 31;

}  // namespace mnistctl
