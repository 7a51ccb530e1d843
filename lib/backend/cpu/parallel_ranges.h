// One contiguous range of a buffer per OpenMP thread, for the CPU backend's elementwise loops
// (bf16_convert, eltwise): each range a whole number of `align` elements (a cache line of
// output, so that no two threads write one line), split over the threads the region really
// got, which may be fewer than asked for (OMP_THREAD_LIMIT, nesting). The ranges depend on the
// thread count only through where they start, so results do not.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace mnistctl::cpu {

// Calls f(first, count) for each thread's range of [0, n), on at most `threads` threads and
// no more than there are `align`-element lines; with one thread, on the caller's.
template <class F>
void parallel_ranges(int64_t n, int64_t align, int threads, F f) {
  const int t = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(std::max(threads, 1), (n + align - 1) / align)));
  if (t == 1) return f(int64_t{0}, n);
#pragma omp parallel num_threads(t)
  {
    const int64_t got = omp_get_num_threads();
    const int64_t per = ((n + align - 1) / align + got - 1) / got * align;
    const int64_t first = std::min(n, per * omp_get_thread_num());
    f(first, std::min(n, first + per) - first);
  }
}

}  // namespace mnistctl::cpu
