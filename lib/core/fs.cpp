#include "core/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace mnistctl {

std::vector<uint8_t> read_file(const std::string& path) {
  // Look before opening: opening a FIFO blocks until a writer comes, and a folder "opens" and
  // then reports a nonsense size.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(st)) throw UsageError(fmt::format("{}: is a folder, expected a file", path));
  if (std::filesystem::exists(st) && !std::filesystem::is_regular_file(st))
    throw UsageError(fmt::format("{}: not a regular file (a FIFO, socket or device), expected a file", path));
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

std::string read_prefix(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string head(max_bytes, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return head;
}

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
  AtomicFile f(path);
  f.write(data, size);
  f.commit();
}

namespace {
// Tries the lock (`op`: LOCK_EX, or LOCK_SH to test it) on an open lock file; if another
// process holds it, closes `fd` and throws the UsageError naming that process (from the
// file), or a RuntimeError for other failures. A few short retries first: check_free holds
// a lock for an instant only, and a train starting then must not be refused for it.
void take_or_refuse(int& fd, int op, const std::string& path, const std::string& folder, const std::string& what) {
  int e = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (::flock(fd, op | LOCK_NB) == 0) return;
    e = errno;
    if (e != EWOULDBLOCK) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string holder;
  char buf[32] = {};
  if (::pread(fd, buf, sizeof buf - 1, 0) > 0) holder = buf;
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  ::close(fd);
  fd = -1;
  if (e == EWOULDBLOCK)
    throw UsageError(fmt::format("{}: {} is already in use by process {}; wait for it or use another folder",
                                 folder, what, holder.empty() ? "(unknown)" : holder));
  throw RuntimeError(fmt::format("{}: cannot lock: {}", path, std::strerror(e)));
}
}  // namespace

void FolderLock::check_free(const std::string& folder, const std::string& what) {
  const std::string path = (std::filesystem::path(folder) / ".lock").string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // no lock file: nobody holds it (and none is made here)
  take_or_refuse(fd, LOCK_SH, path, folder, what);  // shared: two checks do not refuse each other
  ::close(fd);  // it was free: let it go at once
}

FolderLock::FolderLock(const std::string& folder, const std::string& what) {
  path_ = (std::filesystem::path(folder) / ".lock").string();
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw RuntimeError(fmt::format("{}: cannot create lock file: {}", path_, std::strerror(errno)));
  take_or_refuse(fd_, LOCK_EX, path_, folder, what);
  // The holder's process id, for the message a second writer gets.
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw RuntimeError(fmt::format("{}: cannot write lock file: {}", path_, std::strerror(e)));
  }
}

FolderLock::~FolderLock() {
  // The file stays (removing it would race with a process that just opened it); the lock
  // goes with the descriptor.
  if (fd_ >= 0) ::close(fd_);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  // The wrong kind of thing under the name is the caller's to fix (exit 2, like a folder
  // where a file goes, see AtomicFile); failing to create the folder is an I/O failure.
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_directory(path, ec))
    throw UsageError(fmt::format("{}: is a file, expected a folder", path));
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
