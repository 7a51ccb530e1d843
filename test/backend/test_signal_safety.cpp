// Stop signals (core/stop_signals.h) against oneDNN's JIT sgemm, which points rsp at its heap
// workspace while it runs when K exceeds its stack capacity (2048). A SIGTERM delivered
// there once had the kernel write the signal frame below rsp, over the malloc chunk before
// the workspace, and the process died at a later free ("corrupted size vs. prev_size"), as
// in `mpirun` runs stopped with Ctrl-C. Here the main thread runs such inner products while
// another thread sends it SIGTERM thousands of times, each through the handlers train
// installs: the heap must survive and every result stay the same.
#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "core/stop_signals.h"

using namespace mnistctl;

TEST_CASE("stop signals landing inside oneDNN's JIT sgemm leave the heap and the results intact") {
  BackendOptions opts;
  opts.threads = 1;  // as each rank under mpirun --threads 1: the signal can only land on this thread
  auto be = make_backend("cpu", opts);
  FcDesc d;
  d.n = 32;
  d.in = 4096;  // the GEMM's K: above oneDNN's stack capacity, so its buffer is on the heap
  d.out = 64;
  std::vector<float> hx(static_cast<size_t>(d.n * d.in)), hw(static_cast<size_t>(d.out * d.in)),
      hb(static_cast<size_t>(d.out));
  for (size_t i = 0; i < hx.size(); ++i) hx[i] = static_cast<float>(i % 97) / 97.0f - 0.5f;
  for (size_t i = 0; i < hw.size(); ++i) hw[i] = static_cast<float>(i % 89) / 890.0f - 0.05f;
  for (size_t i = 0; i < hb.size(); ++i) hb[i] = static_cast<float>(i) / 64.0f;
  Tensor x = be->empty(Shape{d.n, d.in}), w = be->empty(Shape{d.out, d.in}), b = be->empty(Shape{d.out}),
         y = be->empty(Shape{d.n, d.out});
  be->upload(x, hx.data());
  be->upload(w, hw.data());
  be->upload(b, hb.data());
  be->fc_forward(d, x, w, &b, y);
  std::vector<float> expected(static_cast<size_t>(d.n * d.out)), got(expected.size());
  be->download(y, expected.data());

  StopSignals stop;  // on this thread, as train does
  const pthread_t self = pthread_self();
  std::atomic<bool> done{false};
  std::atomic<long> handled{0};
  std::thread sender([&] {
    while (!done.load()) {
      StopSignals rearm;  // a handled signal restored the default action (a second one kills)
      pthread_kill(self, SIGTERM);
      while (stop_signal() == 0) std::this_thread::yield();
      handled.fetch_add(1);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  long runs = 0, differing = 0;
  while (handled.load() < 1500 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
    be->fc_forward(d, x, w, &b, y);
    be->download(y, got.data());
    ++runs;
    if (std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) != 0) ++differing;
    std::vector<char> churn(static_cast<size_t>(1000 + runs % 5000));  // malloc checks its neighbours here too
    churn[0] = 1;
  }
  done = true;
  sender.join();
  INFO(handled.load() << " SIGTERMs handled during " << runs << " inner products");
  CHECK(handled.load() >= 200);  // without SA_ONSTACK this test aborts: "corrupted size vs. prev_size"
  CHECK(differing == 0);
}
