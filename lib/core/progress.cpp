#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace mnistctl {
namespace {
bool g_bar_on_screen = false;
}

bool interactive_stderr() {
  static const bool tty = isatty(STDERR_FILENO) && std::getenv("CI") == nullptr;
  return tty;
}

namespace {
void put_line(std::FILE* f, const std::string& line) {
  if (g_bar_on_screen) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    g_bar_on_screen = false;
  }
  std::fputs(line.c_str(), f);
  std::fputc('\n', f);
  std::fflush(f);
}
}  // namespace

void log_line(const std::string& line) { put_line(stderr, line); }
void out_line(const std::string& line) { put_line(stdout, line); }

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), tty_(interactive_stderr()) {}

Progress::~Progress() {
  if (drawn_ && !finished_) {
    std::fputs("\r\033[K", stderr);
    g_bar_on_screen = false;
  }
}

bool Progress::due(int64_t done) const {
  if (!tty_) return false;
  return !drawn_ || done >= total_ || std::chrono::steady_clock::now() - last_ >= std::chrono::milliseconds(100);
}

namespace {
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
  std::string line;
  if (total_ > 0) {
    const int width = 30;
    double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    int fill = static_cast<int>(frac * width);
    const double secs = std::chrono::duration<double>(now - first_).count();
    // A rate once there is progress since the first update to measure it by ("-" before:
    // a fast epoch is over before any longer warm-up would end, and 0.0/s would be wrong).
    const double rate = secs > 0 && done > first_done_ ? static_cast<double>(done - first_done_) / secs : 0.0;
    const std::string rate_text = rate > 0 ? fmt::format("{:.1f}/s", rate) : "-/s";
    const std::string eta = rate > 0 ? clock_text(static_cast<double>(total_ - done) / rate) : "-:--";
    line = fmt::format("{} [{}{}] {:3.0f}% {}/{} {} ETA {} {}", label_, std::string(fill, '#'),
                       std::string(width - fill, '.'), frac * 100.0, done, total_, rate_text, eta, suffix);
  } else {
    line = fmt::format("{} {} {}", label_, done, suffix);
  }
  fmt::print(stderr, "\r\033[K{}", line);
  std::fflush(stderr);
  drawn_ = true;
  g_bar_on_screen = true;
}

void Progress::done(const std::string& summary) {
  finished_ = true;
  log_line(fmt::format("{} {}", label_, summary));
}

}  // namespace mnistctl
