// Raw-or-gzip streaming reader (see byte_reader.h).
#include "data/byte_reader.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"

namespace mnistctl {

ByteReader::ByteReader(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) throw UsageError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fileno(f_), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f_);
    if (S_ISDIR(st.st_mode)) throw UsageError(fmt::format("{}: is a folder, expected a data file", path));
    throw UsageError(fmt::format("{}: not a regular file", path));
  }
  file_size_ = static_cast<int64_t>(st.st_size);
  size_hint_ = file_size_;

  unsigned char magic[2] = {0, 0};
  size_t got = std::fread(magic, 1, 2, f_);
  gzip_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (gzip_ && file_size_ >= 18) {
    // ISIZE: the last 4 bytes, little-endian.
    unsigned char t[4];
    if (std::fseek(f_, -4, SEEK_END) == 0 && std::fread(t, 1, 4, f_) == 4)
      size_hint_ = static_cast<int64_t>(t[0] | (t[1] << 8) | (t[2] << 16) |
                                        (static_cast<uint32_t>(t[3]) << 24));
  }
  std::rewind(f_);
  if (gzip_) {
    in_.resize(256 * 1024);
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) {
      std::fclose(f_);
      throw RuntimeError(fmt::format("{}: zlib could not start", path));
    }
    zs_open_ = true;
  }
}

ByteReader::~ByteReader() {
  if (zs_open_) inflateEnd(&zs_);
  if (f_) std::fclose(f_);
}

bool ByteReader::refill() {
  // Keep unread input (at most a byte or two when peeking at a member's magic).
  size_t keep = zs_.avail_in;
  if (keep) std::memmove(in_.data(), zs_.next_in, keep);
  size_t n = std::fread(in_.data() + keep, 1, in_.size() - keep, f_);
  if (n == 0 && std::ferror(f_))
    throw UsageError(fmt::format("{}: read failed: {}", path_, std::strerror(errno)));
  zs_.next_in = in_.data();
  zs_.avail_in = static_cast<uInt>(keep + n);
  return n > 0;
}

void ByteReader::throw_if_cut_off() const {
  if (!pending_.empty()) throw UsageError(pending_);
}

size_t ByteReader::read(void* out, size_t n) {
  if (!gzip_) {
    size_t got = std::fread(out, 1, n, f_);
    if (got < n && std::ferror(f_))
      throw UsageError(fmt::format("{}: read failed: {}", path_, std::strerror(errno)));
    return got;
  }
  if (!pending_.empty()) throw UsageError(pending_);
  zs_.next_out = static_cast<Bytef*>(out);
  zs_.avail_out = static_cast<uInt>(n);
  while (zs_.avail_out > 0) {
    if (member_done_) {
      // After a member: end of data, another member, or garbage.
      while (zs_.avail_in < 2 && refill()) {
      }
      if (zs_.avail_in == 0) break;
      if (zs_.avail_in < 2 || zs_.next_in[0] != 0x1f || zs_.next_in[1] != 0x8b) {
        int64_t left = file_size_ - (static_cast<int64_t>(std::ftell(f_)) - zs_.avail_in);
        throw UsageError(fmt::format("{}: {} bytes of trailing garbage after the gzip data",
                                     path_, left));
      }
      inflateReset(&zs_);
      member_done_ = false;
    }
    if (zs_.avail_in == 0 && !refill()) {
      pending_ = fmt::format("{}: truncated gzip stream (the file ends inside the compressed data)", path_);
      if (zs_.avail_out < n) break;  // this read returns what was decoded; the next one throws
      throw UsageError(pending_);
    }
    int rc = inflate(&zs_, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      member_done_ = true;
    } else if (rc == Z_DATA_ERROR) {
      throw CorruptDataError(fmt::format("{}: corrupt gzip data ({})", path_,
                                         zs_.msg ? zs_.msg : "invalid deflate stream"));
    } else if (rc == Z_MEM_ERROR) {
      throw RuntimeError(fmt::format("{}: out of memory while decompressing", path_));
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      throw UsageError(fmt::format("{}: gzip error {} ({})", path_, rc, zs_.msg ? zs_.msg : ""));
    }
  }
  return n - zs_.avail_out;
}

}  // namespace mnistctl
