// SHA-256 through OpenSSL EVP (see sha256.h).
#include "data/sha256.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "core/error.h"

namespace mnistctl {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(new Impl) {
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1)
    throw RuntimeError("sha256: OpenSSL could not start a digest");
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::update(const void* data, size_t size) {
  if (size && EVP_DigestUpdate(impl_->ctx, data, size) != 1)
    throw RuntimeError("sha256: OpenSSL digest update failed");
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, md, &len) != 1)
    throw RuntimeError("sha256: OpenSSL digest final failed");
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < len; ++i) {
    s += digits[md[i] >> 4];
    s += digits[md[i] & 15];
  }
  return s;
}

std::string sha256_hex(const void* data, size_t size) {
  Sha256 h;
  h.update(data, size);
  return h.hex();
}

std::string sha256_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw UsageError(fmt::format("{}: is a folder, expected the data file of that name (remove or rename the folder)", path));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw UsageError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  Sha256 h;
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
  bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw UsageError(fmt::format("{}: read failed", path));
  return h.hex();
}

}  // namespace mnistctl
