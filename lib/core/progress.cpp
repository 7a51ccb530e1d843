#include "core/progress.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "core/stop_signals.h"

namespace mnistctl {
namespace {
bool g_bar_on_screen = false;
// How often a write to a stalled reader looks whether a stop signal came, and how many looks
// without progress after one it waits before giving the text up: well within the second
// that mpirun leaves between SIGTERM and SIGKILL, for a progress line and the closing one.
constexpr int kStallCheckMs = 50;
constexpr int kGiveUpChecks = 5;
}

bool interactive_stderr() {
  static const bool tty = isatty(STDERR_FILENO) && std::getenv("CI") == nullptr;
  return tty;
}

namespace {
// The descriptor that write_text writes a standard stream through. For a pipe or a terminal:
// a private, non-blocking open file description of the same pipe or terminal (opened anew
// through /proc/self/fd), so that no write blocks and the flags of the stream's own
// description, which the shell and sibling processes share, stay as they are. Otherwise
// (a regular file, whose writes do not wait for a reader; a socket; no /proc): the
// stream's own descriptor.
int write_fd(std::FILE* f) {
  struct Own {
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;
    bool looked = false;
  };
  static Own own[3];
  const int fd = fileno(f);
  struct stat st {};
  if (fd < 0 || fd > 2 || ::fstat(fd, &st) != 0) return fd;
  Own& o = own[fd];
  if (o.looked && (o.dev != st.st_dev || o.ino != st.st_ino)) {  // the stream was pointed elsewhere (dup2)
    if (o.fd >= 0) ::close(o.fd);
    o = Own{};
  }
  if (!o.looked) {
    o.looked = true;
    o.dev = st.st_dev;
    o.ino = st.st_ino;
    if (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && ::isatty(fd)))
      o.fd = ::open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  }
  return o.fd >= 0 ? o.fd : fd;
}

// Writes `text` whole with write(2) behind poll(2), not stdio: output whose reader stalls must
// not hold a run that is stopping. mpirun stops reading its ranks' output while it stops the
// job, and a rank 0 blocked in a progress line never reached its checkpoint before the
// SIGKILL; the stop signal may be delivered to another thread (MPI's, OpenMP's), so it
// cannot be relied on to interrupt a write. A stalled reader is waited for until a stop
// signal came, then for kGiveUpChecks more checks without progress. Returns whether all of
// it was written.
bool write_text(std::FILE* f, const std::string& text) {
  std::fflush(f);  // whatever the caller printed through stdio goes first
  const int fd = write_fd(f);
  const char* p = text.data();
  size_t left = text.size();
  int idle = 0;  // checks without progress since the stop signal
  auto stalled = [&] { return stop_signal() != 0 && ++idle >= kGiveUpChecks; };
  while (left > 0) {
    pollfd pfd{fd, POLLOUT, 0};
    const int ready = ::poll(&pfd, 1, kStallCheckMs);
    if (ready == 0 || (ready < 0 && errno == EINTR)) {
      if (stalled()) return false;  // the run is stopping: the text is given up
      continue;
    }
    // At most PIPE_BUF at a time: what a pipe with room takes whole.
    const ssize_t n = ::write(fd, p, std::min<size_t>(left, PIPE_BUF));
    if (n > 0) {
      p += n;
      left -= static_cast<size_t>(n);
      idle = 0;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (stalled()) return false;  // the room poll saw was taken first: wait for more
      ::poll(nullptr, 0, 1);
    } else if (!(n < 0 && errno == EINTR)) {
      // A closed pipe, a full disk: stdio is handed the rest, meets the same error and keeps
      // it (ferror), so that the exit status reports it (cli's finish_output).
      std::fwrite(p, 1, left, f);
      std::fflush(f);
      return false;
    }
  }
  return true;
}

bool put_line(std::FILE* f, const std::string& line) {
  if (g_bar_on_screen) {
    write_text(stderr, "\r\033[K");
    g_bar_on_screen = false;
  }
  return write_text(f, line + '\n');
}
}  // namespace

bool log_line(const std::string& line) { return put_line(stderr, line); }
bool out_line(const std::string& line) { return put_line(stdout, line); }

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), tty_(interactive_stderr()) {}

Progress::~Progress() {
  if (drawn_ && !finished_) {
    write_text(stderr, "\r\033[K");
    g_bar_on_screen = false;
  }
}

bool Progress::due(int64_t done) const {
  if (!tty_) return false;
  return !drawn_ || done >= total_ || std::chrono::steady_clock::now() - last_ >= std::chrono::milliseconds(100);
}

namespace {
// The terminal's width; where it does not say (0 columns), $COLUMNS, else 80.
size_t terminal_columns(std::FILE* f) {
  struct winsize ws{};
  if (::ioctl(::fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    char* end = nullptr;
    const long n = std::strtol(c, &end, 10);
    if (end != c && *end == '\0' && n > 0 && n < 10000) return static_cast<size_t>(n);
  }
  return 80;
}

std::string clock_text(double seconds) {
  long s = static_cast<long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02d}", s / 60, s % 60);
}
}  // namespace

void Progress::update(int64_t done, const std::string& suffix) {
  if (!tty_) return;
  auto now = std::chrono::steady_clock::now();
  if (first_done_ < 0) {
    first_done_ = done;
    first_ = now;
  }
  if (drawn_ && now - last_ < std::chrono::milliseconds(100) && done < total_) return;
  last_ = now;
  // A line wider than the terminal wraps, and "\r\033[K" then clears only its last row: each
  // redraw would leave a stale row behind. So the bar narrows, then the line is cut, to fit.
  const size_t columns = terminal_columns(stderr);
  std::string line;
  if (total_ > 0) {
    int width = 30;
    double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    const double secs = std::chrono::duration<double>(now - first_).count();
    // A rate once there is progress since the first update to measure it by ("-" before:
    // a fast epoch is over before any longer warm-up would end, and 0.0/s would be wrong).
    const double rate = secs > 0 && done > first_done_ ? static_cast<double>(done - first_done_) / secs : 0.0;
    const std::string rate_text = rate > 0 ? fmt::format("{:.1f}/s", rate) : "-/s";
    const std::string eta = rate > 0 ? clock_text(static_cast<double>(total_ - done) / rate) : "-:--";
    auto draw = [&] {
      const int fill = static_cast<int>(frac * width);
      return fmt::format("{} [{}{}] {:3.0f}% {}/{} {} ETA {} {}", label_, std::string(fill, '#'),
                         std::string(width - fill, '.'), frac * 100.0, done, total_, rate_text, eta, suffix);
    };
    line = draw();
    if (line.size() >= columns) {
      width = std::max(10, width - static_cast<int>(line.size() - columns + 1));
      line = draw();
    }
  } else {
    line = fmt::format("{} {} {}", label_, done, suffix);
  }
  if (line.size() >= columns) {  // one column spare: some terminals wrap on the last one
    size_t cut = columns - 1;
    while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
    line.resize(cut);
  }
  write_text(stderr, "\r\033[K" + line);
  drawn_ = true;
  g_bar_on_screen = true;
}

void Progress::done(const std::string& summary) {
  finished_ = true;
  log_line(fmt::format("{} {}", label_, summary));
}

}  // namespace mnistctl
