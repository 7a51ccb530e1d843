// One contiguous range of a buffer per OpenMP thread, for the CPU backend's elementwise loops
// (bf16_convert, eltwise) and its per-image splits (span_conv): each range a whole number of
// `align` elements (a cache line of output, so that no two threads write one line), split
// over the threads the region really got, which may be fewer than asked for
// (OMP_THREAD_LIMIT, nesting). For elementwise loops the ranges depend on the thread count
// only through where they start, so results do not.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace mnistctl::cpu {

// Thread t's range [*first, *first + *count) of [0, n) when `got` threads split it: in
// thread order, whole `align`-element lines (the last range may end in a partial one), the
// thread's share of the lines rounded down, so that ranges differ by at most one line.
inline void thread_range(int64_t n, int64_t align, int t, int got, int64_t* first, int64_t* count) {
  const int64_t lines = (n + align - 1) / align;
  *first = std::min(n, lines * t / got * align);
  *count = std::min(n, lines * (t + 1) / got * align) - *first;
}

// Calls f(first, count) for each thread's range of [0, n), on at most `threads` threads and
// no more than there are `align`-element lines; with one thread, on the caller's.
template <class F>
void parallel_ranges(int64_t n, int64_t align, int threads, F f) {
  const int t = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(std::max(threads, 1), (n + align - 1) / align)));
  if (t == 1) return f(int64_t{0}, n);
#pragma omp parallel num_threads(t)
  {
    int64_t first, count;
    thread_range(n, align, omp_get_thread_num(), omp_get_num_threads(), &first, &count);
    f(first, count);
  }
}

}  // namespace mnistctl::cpu
