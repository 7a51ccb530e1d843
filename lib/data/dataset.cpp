// Dataset loading (see dataset.h).
#include "data/dataset.h"

#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "data/catalog.h"
#include "data/idx.h"

namespace mnistctl {

Dataset load_dataset(const std::string& images_path, const std::string& labels_path,
                     int64_t limit) {
  if (limit < 0) throw UsageError(fmt::format("sample limit must be >= 0, got {}", limit));
  Dataset ds;
  ds.name = std::filesystem::path(images_path).filename().string();
  IdxImages im = read_idx_images(images_path);
  std::vector<uint8_t> labels = read_idx_labels(labels_path, ds.num_classes);
  if (static_cast<int64_t>(labels.size()) != im.count)
    throw UsageError(fmt::format("{} holds {} images but {} holds {} labels: they must match",
                                 images_path, im.count, labels_path, labels.size()));
  ds.count = im.count;
  ds.rows = im.rows;
  ds.cols = im.cols;
  ds.images = std::move(im.pixels);
  ds.labels = std::move(labels);
  if (limit > 0 && limit < ds.count) {
    ds.count = limit;
    ds.images.resize(static_cast<size_t>(limit * ds.sample_size()));
    ds.images.shrink_to_fit();
    ds.labels.resize(static_cast<size_t>(limit));
  }
  return ds;
}

const char* split_name(Split s) { return s == Split::train ? "train" : "test"; }

Dataset load_split(const std::string& data_root, const std::string& dataset, Split split,
                   int64_t limit) {
  const DatasetInfo& info = find_dataset(dataset);
  std::string dir = dataset_dir(data_root, dataset);
  const DataFile& fi = split == Split::train ? info.train_images : info.test_images;
  const DataFile& fl = split == Split::train ? info.train_labels : info.test_labels;

  auto locate = [&](const DataFile& f) {
    namespace fs = std::filesystem;
    fs::path p = fs::path(dir) / f.name;
    if (fs::exists(p)) return p.string();
    // A decompressed copy (train-images-idx3-ubyte) is read the same way.
    fs::path raw = p;
    if (raw.extension() == ".gz") raw.replace_extension();
    if (fs::exists(raw)) return raw.string();
    throw UsageError(fmt::format(
        "{}: not found: run `mnistctl fetch --dataset {}` to download {} (or point --data-dir / "
        "$MNISTCTL_DATA at the folder that holds {}/)",
        p.string(), dataset, dataset, dataset));
  };
  std::string ip = locate(fi), lp = locate(fl);
  Dataset ds = load_dataset(ip, lp, limit);
  ds.name = dataset + "/" + split_name(split);
  return ds;
}

}  // namespace mnistctl
