// Batch-at-a-time IDX image reader (see idx_stream.h).
#include "data/idx_stream.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "data/byte_reader.h"
#include "data/idx.h"

namespace mnistctl {
namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

IdxImageStream::IdxImageStream(const std::string& path)
    : path_(path), in_(std::make_unique<ByteReader>(path)) {
  uint8_t head[16];
  size_t got = in_->read(head, sizeof head);
  if (got < 4)
    throw UsageError(fmt::format("{}: too short for an IDX file ({} bytes, the header alone is 16)",
                                 path, got));
  const uint32_t magic = be32(head);
  if (magic != 0x00000803u)
    throw UsageError(fmt::format("{}: bad magic 0x{:08x}: not an IDX file of uint8 images "
                                 "(expected 0x00000803)", path, magic));
  if (got < sizeof head)
    throw UsageError(fmt::format("{}: truncated IDX header ({} of 16 bytes)", path, got));
  count_ = be32(head + 4);
  rows_ = be32(head + 8);
  cols_ = be32(head + 12);
  if (count_ == 0 || rows_ == 0 || cols_ == 0)
    throw UsageError(fmt::format("{}: IDX header declares {}x{}x{} (count, rows, cols): a zero "
                                 "extent, the file holds no images", path, count_, rows_, cols_));
  // Each extent < 2^32: check the product step by step so it cannot overflow.
  const int64_t image = rows_ * cols_;
  if (image > kIdxMaxBytes || count_ > kIdxMaxBytes / image)
    throw UsageError(fmt::format("{}: IDX header declares {} images of {}x{}, more than the {} GiB "
                                 "an IDX file may hold: refused", path, count_, rows_, cols_,
                                 kIdxMaxBytes >> 30));
  if (!in_->gzip()) {
    const int64_t have = in_->file_size() - 16, want = count_ * image;
    if (have < want)
      throw UsageError(fmt::format("{}: truncated: the header declares {} images of {}x{} ({} "
                                   "bytes) but the file holds only {} bytes of data",
                                   path, count_, rows_, cols_, want, have));
    if (have > want)
      throw UsageError(fmt::format("{}: {} bytes of trailing data after the {} images of {}x{} "
                                   "the header declares", path, have - want, count_, rows_, cols_));
  }
}

IdxImageStream::~IdxImageStream() = default;

int64_t IdxImageStream::next(int64_t max_images, std::vector<uint8_t>& out) {
  const int64_t image = rows_ * cols_;
  const int64_t n = std::min(std::max<int64_t>(max_images, 0), count_ - pos_);
  out.resize(static_cast<size_t>(n * image));
  if (n > 0) {
    const size_t got = in_->read(out.data(), out.size());
    if (got < out.size())
      throw UsageError(fmt::format("{}: truncated: the header declares {} images but the data "
                                   "ends inside image {}", path_, count_,
                                   pos_ + static_cast<int64_t>(got) / image));
    pos_ += n;
    return n;
  }
  if (!end_checked_) {
    end_checked_ = true;
    // Reading past the declared data runs the gzip CRC check; anything found is refused, and
    // only a bounded amount of it is counted.
    uint8_t extra[4096];
    int64_t more = 0;
    const int64_t count_limit = int64_t(64) << 20;
    for (size_t k; more <= count_limit && (k = in_->read(extra, sizeof extra)) > 0;)
      more += static_cast<int64_t>(k);
    if (more > 0)
      throw UsageError(fmt::format("{}: {}{} bytes of trailing data after the {} images the "
                                   "header declares", path_, more > count_limit ? "over " : "",
                                   more, count_));
  }
  return 0;
}

}  // namespace mnistctl
