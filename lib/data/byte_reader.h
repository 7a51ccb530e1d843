// Sequential reading of a file that may be gzip-compressed, decided by the gzip magic bytes
// (1f 8b), never by the file name.
//
// Decompression is streamed (zlib inflate, 256 KiB at a time) so that callers can validate a
// header and bound what they allocate by what the data really holds: a small file that claims
// to hold gigabytes is caught before the memory is taken. Corrupt data, a failed CRC, a file
// that ends inside the compressed stream and bytes after the last gzip member are all errors
// that name the file (UsageError). Concatenated gzip members are read as one stream (RFC 1952).
// A file that ends inside the compressed stream hands out what it did hold first: the read
// that meets the end returns those bytes, and the next read throws. Corrupt data throws at once
// (CorruptDataError): what it decoded before the damage showed cannot be trusted.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <zlib.h>

#include "core/error.h"

namespace mnistctl {

// Corrupt compressed data or a failed gzip check: the damage may lie anywhere before the point
// where it showed, so no byte of the file can be trusted.
class CorruptDataError : public Error {
 public:
  explicit CorruptDataError(const std::string& message) : Error(kExitUsage, message) {}
};

class ByteReader {
 public:
  explicit ByteReader(const std::string& path);  // throws UsageError when it can't open
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // Reads up to n bytes; returns fewer only at the end of the (decompressed) data.
  size_t read(void* out, size_t n);
  // After a short read: throws the reason when it was a gzip stream cut off inside its
  // compressed data (the more precise message); does nothing otherwise.
  void throw_if_cut_off() const;
  bool gzip() const { return gzip_; }
  // Size of the file on disk.
  int64_t file_size() const { return file_size_; }
  // Raw: the file size. Gzip: the size stored in the last member's trailer (mod 2^32, and
  // untrusted: only a hint for reserving memory).
  int64_t size_hint() const { return size_hint_; }
  const std::string& path() const { return path_; }

 private:
  bool refill();  // more compressed input; false at end of file

  std::string path_;
  std::FILE* f_ = nullptr;
  bool gzip_ = false;
  int64_t file_size_ = 0;
  int64_t size_hint_ = 0;
  z_stream zs_{};
  bool zs_open_ = false;
  bool member_done_ = false;
  std::string pending_;  // the truncation error of a read that returned what it had
  std::vector<unsigned char> in_;
};

}  // namespace mnistctl
