// A dataset split in memory: uint8 images and labels, loaded from a pair of IDX files.
//
// Images stay uint8 (47 MB for the MNIST training set instead of 188 MB of floats); scaling
// to [0, 1] happens per batch in the backend's gather_batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

struct Dataset {
  std::string name;                 // e.g. "mnist/train"
  int64_t count = 0, rows = 0, cols = 0;
  int num_classes = 10;
  std::vector<uint8_t> images;      // count*rows*cols, uint8
  std::vector<uint8_t> labels;      // count
  int64_t sample_size() const { return rows * cols; }
};

// Reads both files and checks that they hold the same number of samples.
// limit > 0: keep only the first `limit` samples.
Dataset load_dataset(const std::string& images_path, const std::string& labels_path,
                     int64_t limit = 0);

enum class Split { train, test };
const char* split_name(Split s);

// Finds <data_root>/<dataset>/<the split's two files> (the catalog's .gz names, or the same
// names without .gz when the user decompressed them). A missing file -> UsageError that says
// to run `mnistctl fetch --dataset X` (or set --data-dir / $MNISTCTL_DATA). A file that is
// present but broken -> the reader's UsageError with "(run 'mnistctl fetch --dataset X
// --force' to download it again)" appended.
// data_root "" -> default_data_root().
Dataset load_split(const std::string& data_root, const std::string& dataset, Split split,
                   int64_t limit = 0);

}  // namespace mnistctl
