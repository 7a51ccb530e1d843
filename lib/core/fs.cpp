#include "core/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"

namespace mnistctl {

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) throw UsageError(fmt::format("{}: cannot read (not a regular file?)", path));
  in.seekg(0);
  std::vector<uint8_t> data(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(data.data()), size))
    throw UsageError(fmt::format("{}: read failed", path));
  return data;
}

namespace {
// Plain write, for targets that are not regular files (/dev/null, /dev/stdout, a FIFO):
// renaming over them would replace the device node itself.
void write_in_place(const std::string& path, const void* data, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw RuntimeError(fmt::format("{}: cannot open for writing: {}", path, std::strerror(errno)));
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t w = ::write(fd, p, size);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      ::close(fd);
      throw RuntimeError(fmt::format("{}: write failed: {}", path, std::strerror(e)));
    }
    p += w;
    size -= static_cast<size_t>(w);
  }
  if (::close(fd) != 0) throw RuntimeError(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
}
}  // namespace

void sync_folder_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) throw RuntimeError(fmt::format("{}: cannot open its folder to sync it: {}", path, std::strerror(errno)));
  int r = ::fsync(dfd);
  int e = errno;
  ::close(dfd);
  // EINVAL: a file system that cannot sync folders (nothing more to be done there).
  if (r != 0 && e != EINVAL)
    throw RuntimeError(fmt::format("{}: cannot sync its folder: {}", path, std::strerror(e)));
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) throw UsageError(fmt::format("{}: is a folder, expected a file name", path));
    write_in_place(path, data, size);
    return;
  }
  std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    // Every failure to write an output is an I/O failure (exit 3), whichever command hits it.
    throw RuntimeError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  }
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw RuntimeError(fmt::format("{}: write failed: {}", path, std::strerror(e)));
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  // close() is checked separately: on some file systems it is where a write error shows.
  int synced = ::fsync(fd), e = errno;
  int closed = ::close(fd);
  if (synced == 0 && closed != 0) e = errno;
  if (synced != 0 || closed != 0) {
    ::unlink(tmp.c_str());
    throw RuntimeError(fmt::format("{}: write failed: {}", path, std::strerror(e)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e2 = errno;
    ::unlink(tmp.c_str());
    throw RuntimeError(fmt::format("{}: cannot rename into place: {}", path, std::strerror(e2)));
  }
  // The rename is durable only once the folder's entry is on disk too.
  sync_folder_of(path);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw RuntimeError(fmt::format("{}: cannot create folder: {}", path, ec.message()));
  if (!std::filesystem::is_directory(path, ec))
    throw RuntimeError(fmt::format("{}: cannot create folder: a file of that name is in the way", path));
}

std::string default_data_root() {
  if (const char* d = std::getenv("MNISTCTL_DATA"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/mnistctl";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/mnistctl";
  return ".cache/mnistctl";
}

double physical_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 1e18;
}

std::string executable_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return p.parent_path().string();
}

}  // namespace mnistctl
