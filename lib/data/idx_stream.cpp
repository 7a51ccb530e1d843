// Batch-at-a-time IDX image reader (see idx_stream.h).
#include "data/idx_stream.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "data/byte_reader.h"
#include "data/idx.h"

namespace mnistctl {

namespace {
// How much of what follows the declared images is read, to count it (and to reach the gzip
// check when it is short).
constexpr int64_t kTrailingLook = int64_t(64) << 20;
}  // namespace

IdxImageStream::IdxImageStream(const std::string& path)
    : path_(path), in_(std::make_unique<ByteReader>(path)) {
  const std::vector<int64_t> dims = read_idx_header(*in_, 3);  // raw: the exact size too
  count_ = end_ = dims[0];
  rows_ = dims[1];
  cols_ = dims[2];
}

IdxImageStream::~IdxImageStream() = default;

void IdxImageStream::throw_truncated() {
  in_->throw_if_cut_off();  // a gzip file's own reason (it ends inside the compressed data) first
  throw UsageError(truncated_);
}

int64_t IdxImageStream::next(int64_t max_images, std::vector<uint8_t>& out) {
  const int64_t image = rows_ * cols_;
  const int64_t n = std::min(std::max<int64_t>(max_images, 0), end_ - pos_);
  out.resize(static_cast<size_t>(n * image));
  if (n > 0) {
    const size_t got = in_->read(out.data(), out.size());
    if (got < out.size()) {
      // The whole images before the end are handed out; the next call reports the end.
      const int64_t whole = static_cast<int64_t>(got) / image;
      const std::string why = fmt::format("{}: truncated: the header declares {} images but the data "
                                          "ends inside image {}", path_, count_, pos_ + whole);
      truncated_ = why;
      end_ = pos_ + whole;  // nothing more to hand out
      if (whole == 0) throw_truncated();
      out.resize(static_cast<size_t>(whole * image));
      pos_ += whole;
      return whole;
    }
    pos_ += n;
    return n;
  }
  if (!truncated_.empty()) throw_truncated();
  if (!end_checked_) {
    end_checked_ = true;
    // Reading past the declared data runs the gzip CRC check; anything found is refused, and
    // only a bounded amount of it is counted.
    uint8_t extra[4096];
    int64_t more = 0;
    for (size_t k; more <= kTrailingLook && (k = in_->read(extra, sizeof extra)) > 0;)
      more += static_cast<int64_t>(k);
    if (more > 0)
      throw UsageError(fmt::format("{}: {}{} bytes of trailing data after the {} images the "
                                   "header declares", path_, more > kTrailingLook ? "over " : "",
                                   more, count_));
  }
  return 0;
}

std::string gzip_damage(const std::string& path) {
  ByteReader in(path);
  if (!in.gzip()) return "";
  std::vector<uint8_t> buf(size_t{1} << 18);
  try {
    // As far as the stream itself would read: the header's images, then a bounded look at
    // what follows (next() reports trailing data), so a small file that inflates to gigabytes
    // costs no more here than there.
    const std::vector<int64_t> dims = read_idx_header(in, 3);
    int64_t left = dims[0] * dims[1] * dims[2] + kTrailingLook;
    for (size_t k; left > 0 && (k = in.read(buf.data(), static_cast<size_t>(std::min<int64_t>(left, buf.size())))) > 0;)
      left -= static_cast<int64_t>(k);
  } catch (const CorruptDataError& e) {
    return e.what();
  } catch (const Error&) {
    // Truncation or trailing bytes: what comes before is sound; the reader reports it in place.
  }
  return "";
}

}  // namespace mnistctl
