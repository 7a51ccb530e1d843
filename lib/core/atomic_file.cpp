// Streaming atomic output (see atomic_file.h).
#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"

namespace mnistctl {

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
  if (fd_ < 0) {
    // As write_file_atomic: a folder that isn't there or can't be written is the caller's path.
    int e = errno;
    std::string msg = fmt::format("{}: cannot create: {}", path, std::strerror(e));
    if (e == ENOENT || e == ENOTDIR || e == EACCES || e == EROFS) throw UsageError(msg);
    throw RuntimeError(msg);
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const std::string& data) {
  const char* p = data.data();
  size_t left = data.size();
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
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw RuntimeError(fmt::format("{}: cannot rename into place: {}", path_, std::strerror(errno)));
  committed_ = true;
  // The rename is durable only once the folder's entry is on disk.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int frc = ::fsync(dfd);
    int e = errno;
    ::close(dfd);
    if (frc != 0 && e != EINVAL)  // EINVAL: a file system that can't sync folders
      throw RuntimeError(fmt::format("{}: cannot sync its folder: {}", path_, std::strerror(e)));
  }
}

}  // namespace mnistctl
