// Streaming atomic output (see atomic_file.h).
#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <atomic>
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

// Ctrl-C, SIGTERM or SIGHUP end a command that does not handle them (predict, export,
// report) at once, skipping the destructor that would remove its temporary file. While a
// writer is open, a handler removes the temporary files still open, then lets the signal end
// the process as before (same signal, same exit status). It is installed only for a signal
// whose disposition is still the default: train handles SIGINT, SIGTERM and SIGHUP itself
// (StopSignals) and finishes or drops its writes, and an ignored signal stays ignored. Everything the handler
// touches is fixed-size and lock-free, and unlink is async-signal-safe.
constexpr int kSlots = 16;
constexpr size_t kSlotPath = 4096;
struct Slot {
  std::atomic<bool> claimed{false};  // owned by a writer
  std::atomic<bool> ready{false};    // path holds its temporary file's name
  char path[kSlotPath];
};
Slot g_slots[kSlots];

extern "C" void remove_temporaries_and_die(int sig) {
  for (Slot& s : g_slots)
    if (s.ready.load()) ::unlink(s.path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_cleanup_handlers() {
  static const bool done = [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction cur {};
      if (::sigaction(sig, nullptr, &cur) != 0 || (cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL) continue;
      struct sigaction sa {};
      sa.sa_handler = remove_temporaries_and_die;
      sigemptyset(&sa.sa_mask);
      ::sigaction(sig, &sa, nullptr);
    }
    return true;
  }();
  (void)done;
}

// A slot for `tmp` (-1 when all are taken or the name is too long: that file is then only
// removed by the destructor, as before).
int register_temporary(const std::string& tmp) {
  if (tmp.size() >= kSlotPath) return -1;
  install_cleanup_handlers();
  for (int i = 0; i < kSlots; ++i) {
    bool expected = false;
    if (!g_slots[i].claimed.compare_exchange_strong(expected, true)) continue;
    std::memcpy(g_slots[i].path, tmp.c_str(), tmp.size() + 1);
    g_slots[i].ready.store(true);
    return i;
  }
  return -1;
}

void release_temporary(int slot) {
  if (slot < 0) return;
  g_slots[slot].ready.store(false);
  g_slots[slot].claimed.store(false);
}

}  // namespace

std::string through_links(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  for (int hops = 0; hops < 40; ++hops) {
    std::error_code ec;
    if (!fs::is_symlink(fs::symlink_status(p, ec)) || ec) return p.string();
    const fs::path to = fs::read_symlink(p, ec);
    if (ec) return p.string();
    p = to.is_absolute() ? to : p.parent_path() / to;
  }
  throw UsageError(fmt::format("{}: too many levels of symbolic links", path));
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), target_(through_links(path)) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) throw UsageError(fmt::format("{}: is a folder, expected a file name", path));
    fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0)
      throw RuntimeError(fmt::format("{}: cannot open for writing: {}", path, std::strerror(errno)));
    return;
  }
  tmp_ = fmt::format("{}.tmp.{}", target_, ::getpid());
  slot_ = register_temporary(tmp_);  // before the file exists: a signal in between finds nothing to remove
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  // Every failure to write an output is an I/O failure (exit 3), whichever command hits it.
  if (fd_ < 0) {
    const int err = errno;
    release_temporary(slot_);  // the destructor of a throwing constructor does not run
    throw RuntimeError(fmt::format("{}{}: cannot create: {}", path,
                                   target_ == path ? "" : " (a link to " + target_ + ")", std::strerror(err)));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  release_temporary(slot_);
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
  if (::rename(tmp_.c_str(), target_.c_str()) != 0)
    throw RuntimeError(fmt::format("{}: cannot rename into place: {}", path_, std::strerror(errno)));
  committed_ = true;
  release_temporary(slot_);
  slot_ = -1;
  // The rename is durable only once the folder's entry is on disk.
  sync_folder_of(target_);
}

}  // namespace mnistctl
