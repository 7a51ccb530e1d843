// The datasets mnistctl knows: names, the four files of each, their SHA-256 and size, and where
// to get them (mirrors, in order, and local folders that some systems install).
//
// A file may have more than one accepted form: Debian's dataset-fashion-mnist ships the
// upstream deflate data re-wrapped in a gzip header without the file name, so its bytes (and
// checksum) differ from the upstream download while the content is the same. Both are listed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

struct Checksum {
  std::string sha256;
  int64_t bytes = 0;
  std::string origin;  // where this form comes from, for messages
};

struct DataFile {
  std::string name;     // e.g. train-images-idx3-ubyte.gz
  std::string sha256;   // the upstream file
  int64_t bytes = 0;
  std::vector<Checksum> also_accepted;  // other verified forms of the same data
  // True when (sha256, size) is one of the accepted forms.
  bool accepts(const std::string& sha, int64_t size) const;
  // The largest accepted size (bounds what a download may write).
  int64_t max_bytes() const;
};

struct DatasetInfo {
  std::string name;
  int64_t rows = 28, cols = 28;  // image size (both datasets are MNIST-shaped)
  int classes = 10;
  std::vector<std::string> class_names;  // one per class, for output a person reads
  bool fills_frame = false;  // its images fill 28x28 (Fashion-MNIST), not a 20x20 box (MNIST)
  DataFile train_images, train_labels, test_images, test_labels;
  std::vector<std::string> mirrors;     // base URLs, tried in order
  std::vector<std::string> local_dirs;  // folders a system package may have installed
  std::vector<const DataFile*> files() const {
    return {&train_images, &train_labels, &test_images, &test_labels};
  }
};

// Unknown -> UsageError listing the known names.
const DatasetInfo& find_dataset(const std::string& name);
std::vector<std::string> dataset_names();
// <root>/<name>; root "" -> default_data_root(). Checks the name.
std::string dataset_dir(const std::string& data_root, const std::string& name);

}  // namespace mnistctl
