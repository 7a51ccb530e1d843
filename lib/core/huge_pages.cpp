#include "core/huge_pages.h"

#include <sys/mman.h>

#include <fstream>
#include <sstream>

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

std::string transparent_huge_pages_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return "";
  const size_t open = line.find('['), close = line.find(']', open);
  return open == std::string::npos || close == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
}

int64_t process_huge_page_bytes() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("AnonHugePages:", 0) != 0) continue;
    std::istringstream fields(line.substr(14));
    int64_t kib = -1;
    std::string unit;
    return fields >> kib >> unit && kib >= 0 && unit == "kB" ? kib * 1024 : -1;
  }
  return -1;
}

}  // namespace mnistctl
