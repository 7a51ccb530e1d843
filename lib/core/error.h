// Errors that carry the process exit code they should end with.
//
// Every failure a user can cause is thrown as mnistctl::Error with one line of text
// (file, line or field, what was expected) and one of the documented exit codes below;
// apps/mnistctl catches it in main() and prints "mnistctl: <message>".
// This header stays free of fmt so that CUDA sources can include it.
#pragma once

#include <stdexcept>
#include <string>

namespace mnistctl {

enum ExitCode : int {
  kExitOk = 0,
  kExitGateFailed = 1,   // eval ran, but the model is below --min-accuracy
  kExitUsage = 2,        // bad usage, config, input file or data
  kExitRuntime = 3,      // runtime failure: network, I/O, NaN loss, backend error
  kExitInterrupted = 130 // SIGINT: the run stopped cleanly after writing a checkpoint
};

class Error : public std::runtime_error {
 public:
  Error(int exit_code, const std::string& message)
      : std::runtime_error(message), code_(exit_code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// Bad usage, config or input: exit 2.
inline Error UsageError(const std::string& message) { return Error(kExitUsage, message); }
// Something failed while running: exit 3.
inline Error RuntimeError(const std::string& message) { return Error(kExitRuntime, message); }

}  // namespace mnistctl
