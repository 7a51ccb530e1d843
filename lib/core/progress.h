// Progress for long work: a redrawn bar on a terminal, plain lines when piped or in CI.
//
// On a TTY (and CI unset) update() redraws one line on stderr at most 10 times a second:
// the bar, "done/total", the rate and the ETA (from the rate since the first update), and
// the caller's suffix (training adds samples/s and the running loss). Otherwise update()
// prints nothing and only done() writes one line, so logs stay line-oriented. Messages that
// must always appear go through log_line().
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace mnistctl {

// True when stderr is a terminal and the CI variable is unset.
bool interactive_stderr();

// Prints one line to stderr, clearing a progress bar first if one is drawn.
bool log_line(const std::string& line);
// Prints one line to stdout (results, training logs), clearing a progress bar first.
// Both wait for a reader that stalls, but give the line up once a stop signal came
// (stop_signals.h), so that a stopping run reaches its checkpoint; a write error stays on
// the stream (ferror) for the exit status. They return whether the whole line was written.
bool out_line(const std::string& line);

class Progress {
 public:
  // total <= 0: unknown (shows a count instead of a bar).
  Progress(std::string label, int64_t total);
  ~Progress();
  void update(int64_t done, const std::string& suffix = "");
  // Whether update(done) would redraw now: lets a caller skip work (a device sync for the
  // running loss) that only the bar needs.
  bool due(int64_t done) const;
  // Finishes the bar (or prints the single summary line when not interactive).
  void done(const std::string& summary);

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
  bool drawn_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_;
  // The first update seen: the ETA's rate is measured from it (a resumed epoch starts midway).
  int64_t first_done_ = -1;
  std::chrono::steady_clock::time_point first_;
};

}  // namespace mnistctl
