// Runs the mnistctl binary as a child process for end-to-end tests: arguments in, exit
// code and captured output back. stdout and stderr are captured separately (run_program),
// or go to files while the child's own peak memory is measured (run_to_files).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace mnistctl::test {

// In a forked child: becomes `exe` (a path) with `args`; exit code 127 where exec fails.
[[noreturn]] inline void exec_program(const std::string& exe, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(exe.c_str(), argv.data());
  _exit(127);
}

// In a forked child: caps every file it writes at `limit` bytes (RLIMIT_FSIZE with SIGXFSZ
// ignored: a write past it fails with EFBIG, as on a full disk). 0: no cap.
inline void cap_file_size(rlim_t limit) {
  if (limit == 0) return;
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl{limit, limit};
  setrlimit(RLIMIT_FSIZE, &rl);
}

// A wait status as the tests read it: the exit code, or 128 + the signal that ended the child.
inline int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

struct RunResult {
  int code = -1;
  std::string out, err;
};

// Runs `exe` (a path) with `args`. `on_stdout_line` (optional) sees each stdout line as it
// arrives, with the child's pid, so a test can signal the child mid-run. file_size_limit > 0
// caps every file the child writes (RLIMIT_FSIZE with SIGXFSZ ignored: a write past it fails
// with EFBIG, as on a full disk; the pipes are not files and stay unlimited).
inline RunResult run_program(const std::string& exe, const std::vector<std::string>& args,
                             const std::function<void(const std::string&, pid_t)>& on_stdout_line = {},
                             const std::vector<std::string>& env = {}, rlim_t file_size_limit = 0) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    cap_file_size(file_size_limit);
    exec_program(exe, args);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  RunResult r;
  // Read stdout line by line (for the callback), then the rest of stderr. stderr is drained
  // in a non-blocking way as we go so that a chatty child never blocks on a full pipe.
  fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
  std::string line;
  char buf[4096];
  for (;;) {
    ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      r.out += buf[i];
      if (buf[i] == '\n') {
        if (on_stdout_line) on_stdout_line(line, pid);
        line.clear();
      } else {
        line += buf[i];
      }
    }
    ssize_t m;
    while ((m = read(err_pipe[0], buf, sizeof buf)) > 0) r.err.append(buf, static_cast<size_t>(m));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  fcntl(err_pipe[0], F_SETFL, 0);
  ssize_t m;
  while ((m = read(err_pipe[0], buf, sizeof buf)) > 0) r.err.append(buf, static_cast<size_t>(m));
  close(out_pipe[0]);
  close(err_pipe[0]);
  r.code = exit_code(status);
  return r;
}

// An on_stdout_line for run_program and run_mnistctl: sends `sig` to the child once, at the
// first stdout line that contains `marker`, and sets `sent` (a test REQUIREs it, so that the
// exit code it checks is the one of a run that was signalled mid-way).
inline std::function<void(const std::string&, pid_t)> signal_at(const std::string& marker, int sig, bool& sent) {
  return [marker, sig, &sent](const std::string& line, pid_t pid) {
    if (!sent && line.find(marker) != std::string::npos) {
      kill(pid, sig);
      sent = true;
    }
  };
}

// The mnistctl binary of this build.
inline RunResult run_mnistctl(const std::vector<std::string>& args,
                              const std::function<void(const std::string&, pid_t)>& on_stdout_line = {},
                              const std::vector<std::string>& env = {}, rlim_t file_size_limit = 0) {
  return run_program(MNISTCTL_EXE, args, on_stdout_line, env, file_size_limit);
}

// What run_to_files reports: the exit code, what the child wrote to stderr, and its own peak
// resident memory (wait4's rusage: this child alone, not the test's other children).
struct Limited {
  int code = -1;
  long max_rss_kb = 0;
  std::string err;
};

// Runs mnistctl with stdout to `out_path` ("/dev/null" to discard it) and stderr to
// `err_path`; file_size_limit > 0 caps every file it writes, stderr included (cap_file_size).
inline Limited run_to_files(const std::vector<std::string>& args, const std::string& out_path,
                            const std::string& err_path, rlim_t file_size_limit = 0) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    cap_file_size(file_size_limit);
    exec_program(MNISTCTL_EXE, args);
  }
  int status = 0;
  struct rusage ru{};
  REQUIRE(wait4(pid, &status, 0, &ru) == pid);
  Limited r;
  r.code = exit_code(status);
  r.max_rss_kb = ru.ru_maxrss;  // kilobytes on Linux
  std::ifstream in(err_path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  return r;
}

// run_to_files with stdout discarded and stderr in <scratch>/stderr.txt.
inline Limited run_limited(const std::vector<std::string>& args, const std::string& scratch, rlim_t file_size_limit = 0) {
  return run_to_files(args, "/dev/null", scratch + "/stderr.txt", file_size_limit);
}

// run_to_files with stdout in `out_file` and stderr in `out_file`.stderr; peak memory in MB.
struct Measured {
  int code = -1;
  long max_rss_mb = -1;
  std::string err;
};
inline Measured run_measured(const std::vector<std::string>& args, const std::string& out_file) {
  const Limited r = run_to_files(args, out_file, out_file + ".stderr");
  return {r.code, r.max_rss_kb / 1024, r.err};
}

}  // namespace mnistctl::test
