// Host memory on 2 MiB pages for the large buffers of a training step.
//
// Why: LeNet's step at batch 100 touches tens of MB (activations, their gradients, a
// shuffled batch gathered from a 47 MB training set). On 4 KiB pages that is thousands of
// pages, more than the TLB holds, so every layer pays page walks. The kernel's transparent
// huge pages are commonly enabled only where a program asks for them (madvise mode), so the
// large buffers ask. Advice changes no value: results stay bit-identical.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

// The huge-page size the advice is for.
constexpr size_t kHugePage = size_t{2} << 20;

// Asks the kernel to back the whole 2 MiB pages inside [p, p + bytes) with huge pages. Only
// pages not yet touched are affected, so call it before the memory is written. A no-op where
// the system has no such advice, or for a range that holds no whole huge page.
void advise_huge_pages(void* p, size_t bytes);

// Reserves room for `n` bytes in an empty `v`, advised before anything is written to it (a
// later resize that stays within the capacity fills huge pages).
void reserve_on_huge_pages(std::vector<uint8_t>& v, size_t n);

// The kernel's transparent-huge-page mode, the bracketed word of
// /sys/kernel/mm/transparent_hugepage/enabled: "always", "madvise" (huge pages only where
// advised, as above) or "never"; "" where the kernel has none.
std::string transparent_huge_pages_mode();

// Bytes of this process's memory on transparent huge pages (AnonHugePages of
// /proc/self/smaps_rollup); -1 where that cannot be read.
int64_t process_huge_page_bytes();

}  // namespace mnistctl
