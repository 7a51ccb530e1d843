// IDX image files read a batch at a time, for `predict` over files of any length: memory is
// bounded by the batch, never by what the header declares.
//
// The header is checked by read_idx_images's own checks (read_idx_header, idx.h): magic
// 0x00000803, no zero extent, at most kIdxMaxBytes of elements, and for a raw file the exact
// size, before any image is returned. A gzip file is inflated only as far as the header's declared size; a
// stream that ends early is an error at the image where it ends, and data after the declared
// images is an error once the last image has been read (so a file can never yield more than
// its header says). Errors are UsageError naming the file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mnistctl {

class ByteReader;

class IdxImageStream {
 public:
  explicit IdxImageStream(const std::string& path);  // reads and checks the header
  ~IdxImageStream();
  IdxImageStream(const IdxImageStream&) = delete;
  IdxImageStream& operator=(const IdxImageStream&) = delete;

  int64_t count() const { return count_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // Images handed out so far.
  int64_t position() const { return pos_; }

  // Replaces `out` with the next min(max_images, images left) images (rows*cols bytes each)
  // and returns how many. After the last image, the rest of the file is checked (trailing
  // data, the gzip CRC); then 0 is returned. A file that ends early hands out its whole
  // images first; the call after them throws.
  int64_t next(int64_t max_images, std::vector<uint8_t>& out);

 private:
  [[noreturn]] void throw_truncated();

  std::string path_;
  std::unique_ptr<ByteReader> in_;
  int64_t count_ = 0, rows_ = 0, cols_ = 0, pos_ = 0;
  int64_t end_ = 0;  // the images there are to hand out: count_, or fewer once a cut is met
  bool end_checked_ = false;
  std::string truncated_;  // the error the next call throws, once the images before it are out
};

// The message of the damage a gzip file's data holds (corrupt deflate data, a failed check),
// found by inflating it as far as IdxImageStream would read and discarding the bytes; "" when it
// is sound or not gzip (or its IDX header is bad: the stream reports that).
// Such damage is often found only at the file's end, after the bytes it spoiled: a caller that
// hands out data as it reads it checks the file first. (Throws what opening the file throws.)
std::string gzip_damage(const std::string& path);

}  // namespace mnistctl
