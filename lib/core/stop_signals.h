// Ctrl-C, SIGTERM and SIGHUP (unless nohup ignores it) as a request to stop, for long work that
// ends cleanly (train writes a checkpoint): StopSignals installs the handlers for its lifetime, stop_signal() says
// which signal came (0 while none did), and a second one ends the process at once. SIGPIPE
// (stdout's reader went away) is a request to stop too, but never ends the process: the
// writes to the closed pipe fail instead.
//
// The handlers run on an alternate signal stack (sigaltstack, SA_ONSTACK), never on the
// stack of the code they interrupt. oneDNN's JIT sgemm (jit_avx512_common_gemm_f32 and
// jit_avx_gemm_f32, used by inner product and gemm convolution) points rsp at its heap
// workspace while it runs when K exceeds its stack capacity; a signal delivered then had
// the kernel write its frame (some KiB with the AVX-512 state) below rsp, over the malloc
// chunk before that workspace: "corrupted size vs. prev_size" at a later free. Every
// thread that can run oneDNN code therefore needs its own alternate stack:
// ensure_signal_stack() gives the calling thread one (the CPU backend calls it on each
// OpenMP worker), and StopSignals calls it for the thread that installs the handlers.
#pragma once

#include <signal.h>

namespace mnistctl {

// The signal that asked to stop (SIGINT, SIGTERM, SIGHUP or SIGPIPE) since the last StopSignals was made, 0
// while none did.
int stop_signal();
// Data parallelism: the signal the ranks agreed on (the largest), so that all stop together.
void set_stop_signal(int sig);

// Gives the calling thread an alternate signal stack of its own (mmap'ed, with a guard page
// below it) unless it has one; it lasts as long as the thread.
void ensure_signal_stack();

// Installs the SIGINT, SIGTERM, SIGHUP and SIGPIPE handlers (and clears stop_signal()) for its
// lifetime; the previous handlers come back when it ends.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction prev_int_ {}, prev_term_ {}, prev_pipe_ {}, prev_hup_ {};
};

}  // namespace mnistctl
