// Starts test/data/http_server.py on 127.0.0.1 (a free port) for one test and kills it when
// the test ends. The fetch tests never reach beyond the loopback interface.
#pragma once

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace mnistctl::test {

inline std::string python3() { return MNISTCTL_PYTHON3; }

class LoopbackServer {
 public:
  // mode: serve | 404 | wrong | truncate | stall | flaky | flood (see http_server.py).
  LoopbackServer(const std::string& mode, const std::string& root, const std::string& log = "") {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    std::string script = std::string(MNISTCTL_SOURCE_DIR) + "/test/data/http_server.py";
    std::vector<std::string> args = {python3(), script, "--mode", mode, "--root", root,
                                     "--lifetime", "60"};
    if (!log.empty()) {
      args.push_back("--log");
      args.push_back(log);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error("cannot start " + python3());
    }
    // Wait (at most 10 s) for "PORT <n>\n".
    std::string line;
    pollfd p{fds[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&p, 1, 10000) > 0) {
      char buf[64];
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    if (line.rfind("PORT ", 0) != 0) {
      stop();
      throw std::runtime_error("loopback server did not start: '" + line + "'");
    }
    port_ = std::stoi(line.substr(5));
  }
  ~LoopbackServer() { stop(); }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
  int port() const { return port_; }

 private:
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
  }
  pid_t pid_ = -1;
  int port_ = 0;
};

// Lines of a server's request log (empty when none was made).
inline std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace mnistctl::test
