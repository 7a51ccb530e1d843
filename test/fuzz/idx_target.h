// Shared by the two IDX fuzz targets (fuzz_idx: the bytes as given; fuzz_idx_gzip: the bytes
// gzipped by the harness): what each does with the file once it is written.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/idx.h"

namespace mnistctl::fuzz {

// Reads `path` as an image file and as a label file (a refusal is an Error, not a finding;
// pixels that disagree with the header's extents are), then removes it.
inline void read_idx_both_ways(const std::string& path) {
  try {
    IdxImages im = read_idx_images(path);
    if (static_cast<int64_t>(im.pixels.size()) != im.count * im.rows * im.cols) __builtin_trap();
  } catch (const Error&) {
  }
  try {
    (void)read_idx_labels(path, 10);
  } catch (const Error&) {
  }
  unlink(path.c_str());
}

}  // namespace mnistctl::fuzz
