// Runs the mnistctl binary as a child process for end-to-end tests: arguments in, exit
// code and captured output back. stdout and stderr are captured separately.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

namespace mnistctl::test {

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
    if (file_size_limit > 0) {
      signal(SIGXFSZ, SIG_IGN);
      struct rlimit rl{file_size_limit, file_size_limit};
      setrlimit(RLIMIT_FSIZE, &rl);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
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
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// The mnistctl binary of this build.
inline RunResult run_mnistctl(const std::vector<std::string>& args,
                              const std::function<void(const std::string&, pid_t)>& on_stdout_line = {},
                              const std::vector<std::string>& env = {}, rlim_t file_size_limit = 0) {
  return run_program(MNISTCTL_EXE, args, on_stdout_line, env, file_size_limit);
}

}  // namespace mnistctl::test
