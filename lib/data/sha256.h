// SHA-256 for verifying downloads, through OpenSSL's libcrypto (EVP) rather than our own code:
// a checksum is only worth something if its implementation is beyond doubt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mnistctl {

// Incremental hasher: update() as bytes arrive (a download streams through it), then hex().
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  // Lower-case hex digest; the hasher is finished afterwards.
  std::string hex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(const void* data, size_t size);
// Hashes a file in chunks (never loads it whole); throws UsageError naming it when unreadable.
std::string sha256_file(const std::string& path);

}  // namespace mnistctl
