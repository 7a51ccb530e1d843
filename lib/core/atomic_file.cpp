// Streaming atomic output (see atomic_file.h).
#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"

namespace mnistctl {
namespace {

// TEST-ONLY HOOK (test/cli/test_crash_safety.cpp): MNISTCTL_TEST_WRITE_DELAY_MS=<ms> holds
// each finished, fsynced temporary file that long before the rename, so that a test can kill
// the process inside a checkpoint write. Unset (as in every normal use) it does nothing.
void test_only_write_delay() {
  static const long ms = [] {
    const char* v = std::getenv("MNISTCTL_TEST_WRITE_DELAY_MS");
    return v && *v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  if (ms > 0) ::usleep(static_cast<useconds_t>(std::min(ms, 10000L)) * 1000);
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) throw UsageError(fmt::format("{}: is a folder, expected a file name", path));
    fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0)
      throw RuntimeError(fmt::format("{}: cannot open for writing: {}", path, std::strerror(errno)));
    return;
  }
  tmp_ = fmt::format("{}.tmp.{}", path, ::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  // Every failure to write an output is an I/O failure (exit 3), whichever command hits it.
  if (fd_ < 0) throw RuntimeError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t w = ::write(fd_, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw RuntimeError(fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
    p += w;
    left -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (tmp_.empty()) {  // in place
    int rc = ::close(fd_);
    fd_ = -1;
    committed_ = true;
    if (rc != 0) throw RuntimeError(fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
    return;
  }
  if (::fsync(fd_) != 0) throw RuntimeError(fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw RuntimeError(fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
  test_only_write_delay();
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw RuntimeError(fmt::format("{}: cannot rename into place: {}", path_, std::strerror(errno)));
  committed_ = true;
  // The rename is durable only once the folder's entry is on disk.
  sync_folder_of(path_);
}

}  // namespace mnistctl
