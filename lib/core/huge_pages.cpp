#include "core/huge_pages.h"

#include <sys/mman.h>

namespace mnistctl {

void advise_huge_pages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (begin + kHugePage - 1) / kHugePage * kHugePage;
  const uintptr_t last = (begin + bytes) / kHugePage * kHugePage;
  // Advice only: where it is refused (an old kernel, THP disabled) the pages stay small.
  if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

void reserve_on_huge_pages(std::vector<uint8_t>& v, size_t n) {
  if (!v.empty() || n <= v.capacity()) {
    v.reserve(n);
    return;
  }
  std::vector<uint8_t>().swap(v);  // drop a small old allocation: the new one is untouched
  v.reserve(n);
  advise_huge_pages(v.data(), v.capacity());
}

}  // namespace mnistctl
