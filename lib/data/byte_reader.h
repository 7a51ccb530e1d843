// Sequential reading of a file that may be gzip-compressed, decided by the gzip magic bytes
// (1f 8b), never by the file name.
//
// Decompression is streamed (zlib inflate, 256 KiB at a time) so that callers can validate a
// header and bound what they allocate by what the data really holds: a small file that claims
// to hold gigabytes is caught before the memory is taken. Corrupt data, a failed CRC, a file
// that ends inside the compressed stream and bytes after the last gzip member are all errors
// that name the file (UsageError). Concatenated gzip members are read as one stream (RFC 1952).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <zlib.h>

namespace mnistctl {

class ByteReader {
 public:
  explicit ByteReader(const std::string& path);  // throws UsageError when it can't open
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // Reads up to n bytes; returns fewer only at the end of the (decompressed) data.
  size_t read(void* out, size_t n);
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
  std::vector<unsigned char> in_;
};

}  // namespace mnistctl
