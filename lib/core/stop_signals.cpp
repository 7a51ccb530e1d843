// Stop signals on an alternate stack (see stop_signals.h for why the stack matters).
#include "core/stop_signals.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstddef>

namespace mnistctl {
namespace {

volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_stop_signal(int sig) { g_stop = sig; }  // SA_RESETHAND: a second one ends the process
// A reader of stdout that went away (`mnistctl train | head`): the write that met the closed
// pipe fails with EPIPE instead of the process dying, and the run stops as for SIGTERM. Not
// reset, and it never overrides Ctrl-C: later writes to the closed pipe just fail.
extern "C" void on_broken_pipe(int sig) {
  if (g_stop == 0) g_stop = sig;
}

// One thread's alternate signal stack: a guard page, then the stack. Made on first use,
// taken down when the thread ends.
struct AltStack {
  void* base = nullptr;
  size_t bytes = 0;
  void make() {
    // The kernel's frame size for this CPU (AVX-512 state included), with room for the handler.
    const long min = sysconf(_SC_MINSIGSTKSZ);
    const size_t enough = 4 * static_cast<size_t>(min > 0 ? min : MINSIGSTKSZ);
    stack_t cur{};
    if (sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) && cur.ss_size >= enough)
      return;  // the thread has one that is large enough (ASan's, a test framework's)
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t size = std::max<size_t>(64 * 1024, enough);
    size = (size + page - 1) / page * page;
    void* p = mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) return;  // no alternate stack: the handlers still work, on the thread's stack
    mprotect(p, page, PROT_NONE);
    stack_t ss{};
    ss.ss_sp = static_cast<char*>(p) + page;
    ss.ss_size = size;
    if (sigaltstack(&ss, nullptr) != 0) {
      munmap(p, size + page);
      return;
    }
    base = p;
    bytes = size + page;
  }
  ~AltStack() {
    if (!base) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    munmap(base, bytes);
  }
};

void install(int sig, struct sigaction* prev) {
  struct sigaction sa{};
  sa.sa_handler = sig == SIGPIPE ? on_broken_pipe : on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_ONSTACK | SA_RESTART | (sig == SIGPIPE ? 0 : SA_RESETHAND);
  sigaction(sig, &sa, prev);
}

}  // namespace

int stop_signal() { return static_cast<int>(g_stop); }
void set_stop_signal(int sig) { g_stop = sig; }

void ensure_signal_stack() {
  thread_local AltStack stack;
  if (!stack.base) stack.make();
}

StopSignals::StopSignals() {
  ensure_signal_stack();
  g_stop = 0;
  install(SIGINT, &prev_int_);
  install(SIGTERM, &prev_term_);
  install(SIGPIPE, &prev_pipe_);
  // A hang-up (the terminal closed, the ssh connection dropped) stops the run as SIGTERM does,
  // unless it is ignored (nohup): then it stays ignored.
  sigaction(SIGHUP, nullptr, &prev_hup_);
  if (prev_hup_.sa_handler != SIG_IGN || (prev_hup_.sa_flags & SA_SIGINFO)) install(SIGHUP, &prev_hup_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &prev_int_, nullptr);
  sigaction(SIGTERM, &prev_term_, nullptr);
  sigaction(SIGPIPE, &prev_pipe_, nullptr);
  sigaction(SIGHUP, &prev_hup_, nullptr);
}

}  // namespace mnistctl
