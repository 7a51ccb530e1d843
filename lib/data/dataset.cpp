// Dataset loading (see dataset.h).
#include "data/dataset.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/shell_word.h"
#include "data/catalog.h"
#include "data/idx.h"

namespace mnistctl {
namespace {

void check_limit(int64_t limit) {
  if (limit < 0) throw UsageError(fmt::format("sample limit must be >= 0, got {}", limit));
}

}  // namespace

Dataset load_dataset(const std::string& images_path, const std::string& labels_path,
                     int64_t limit) {
  check_limit(limit);
  Dataset ds;
  ds.name = std::filesystem::path(images_path).filename().string();
  // The two headers first: a mismatch is refused before gigabytes of images are inflated.
  const int64_t n_images = read_idx_header(images_path, 3)[0], n_labels = read_idx_header(labels_path, 1)[0];
  if (n_images != n_labels)
    throw UsageError(fmt::format("{} holds {} images but {} holds {} labels: they must match", images_path,
                                 n_images, labels_path, n_labels));
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
  check_limit(limit);  // before the try below: a bad limit is not a broken file
  const DatasetInfo& info = find_dataset(dataset);
  std::string dir = dataset_dir(data_root, dataset);
  // The fetch that puts the files where this looked: with --data-dir when one was given.
  const std::string fetch = fmt::format("mnistctl fetch --dataset {}{}", dataset,
                                        data_root.empty() ? "" : " --data-dir " + shell_word(data_root));
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
    // --data-dir given a folder that holds the files itself: the one above it is meant where
    // the folder has the dataset's name; else the files belong in a <dataset>/ folder.
    if (fs::exists(fs::path(data_root) / f.name) || fs::exists(fs::path(data_root) / raw.filename())) {
      const fs::path given = (fs::path(data_root) / ".").lexically_normal().parent_path();
      if (given.filename() == dataset)
        throw UsageError(fmt::format("{}: not found; {} holds the {} files itself: --data-dir takes the folder "
                                     "above it ({})",
                                     p.string(), data_root, dataset, given.parent_path().string()));
      throw UsageError(fmt::format("{}: not found; {} holds the {} files itself: --data-dir takes a folder with "
                                   "them in its {}/ (move them into {})",
                                   p.string(), data_root, dataset, dataset, dir));
    }
    throw UsageError(fmt::format(
        "{}: not found: run `{}` to download {} (or point --data-dir / $MNISTCTL_DATA at the folder that holds {}/)",
        p.string(), fetch, dataset, dataset));
  };
  std::string ip = locate(fi), lp = locate(fl);
  // A file that cannot be opened at all (permissions) is not cured by downloading it again:
  // its own error, without the hint below.
  for (const auto& p : {ip, lp})
    if (std::FILE* f = std::fopen(p.c_str(), "rb")) std::fclose(f);
    else throw UsageError(fmt::format("{}: cannot open: {}", p, std::strerror(errno)));
  Dataset ds;
  try {
    ds = load_dataset(ip, lp, limit);
  } catch (const Error& e) {
    // Present but broken (truncated, corrupt gzip, bad header, counts that disagree): say
    // how to replace it. Runtime failures (memory) keep their message as it is.
    if (e.code() != kExitUsage) throw;
    throw UsageError(fmt::format("{} (run `{} --force` to download it again)", e.what(), fetch));
  }
  // A file of another image size (another dataset renamed, or a damaged header) is named
  // here rather than met later as "N pixels, the network expects M".
  if (ds.rows != info.rows || ds.cols != info.cols)
    throw UsageError(fmt::format("{}: holds {}x{} images, but {} images are {}x{} (run `{} --force` to download it "
                                 "again)",
                                 ip, ds.rows, ds.cols, dataset, info.rows, info.cols, fetch));
  ds.name = dataset + "/" + split_name(split);
  return ds;
}

}  // namespace mnistctl
