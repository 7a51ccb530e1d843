// IDX reading: round trips (raw and gzip), the corpus of broken files, and the real MNIST.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data_helpers.h"
#include "test_util.h"

using namespace mnistctl;
using namespace mnistctl::test;

namespace {

// The error text of f(), or "" when it did not throw an Error (with its code checked).
template <typename F>
std::string error_of(F&& f, int code = kExitUsage) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.code() == code);
    return e.what();
  }
  return "";
}

const uint32_t kImg = 0x00000803, kLab = 0x00000801;

}  // namespace

TEST_CASE("IDX images and labels round-trip raw and gzip (detected by content)") {
  std::string dir = scratch_dir("idx_roundtrip");
  Bytes pixels = pattern(5 * 4 * 3, 7);
  Bytes labels = {3, 1, 4, 1, 5};
  Bytes img = idx_bytes(kImg, {5, 4, 3}, pixels), lab = idx_bytes(kLab, {5}, labels);
  // Deliberately misleading names: the reader must look at the magic bytes, not the name.
  write_bytes(dir + "/img-raw.gz", img);
  write_bytes(dir + "/img-gz.idx", gzip_bytes(img));
  write_bytes(dir + "/lab-raw", lab);
  write_bytes(dir + "/lab.gz", gzip_bytes(lab));
  for (const char* name : {"/img-raw.gz", "/img-gz.idx"}) {
    IdxImages im = read_idx_images(dir + name);
    CHECK(im.count == 5);
    CHECK(im.rows == 4);
    CHECK(im.cols == 3);
    CHECK(im.pixels == pixels);
  }
  CHECK(read_idx_labels(dir + "/lab-raw") == labels);
  CHECK(read_idx_labels(dir + "/lab.gz") == labels);

  Dataset ds = load_dataset(dir + "/img-gz.idx", dir + "/lab.gz");
  CHECK(ds.count == 5);
  CHECK(ds.sample_size() == 12);
  CHECK(ds.images == pixels);
  CHECK(ds.labels == labels);
  Dataset lim = load_dataset(dir + "/img-gz.idx", dir + "/lab.gz", 2);
  CHECK(lim.count == 2);
  CHECK(lim.images == Bytes(pixels.begin(), pixels.begin() + 24));
  CHECK(lim.labels == Bytes({3, 1}));

  // Concatenated gzip members are one valid stream (RFC 1952).
  Bytes half1(img.begin(), img.begin() + 30), half2(img.begin() + 30, img.end());
  Bytes two = gzip_bytes(half1), g2 = gzip_bytes(half2);
  two.insert(two.end(), g2.begin(), g2.end());
  write_bytes(dir + "/img-2members.gz", two);
  CHECK(read_idx_images(dir + "/img-2members.gz").pixels == pixels);
}

TEST_CASE("Broken IDX files each give one clear error naming the file") {
  std::string dir = scratch_dir("idx_broken");
  Bytes pixels = pattern(4 * 28 * 28, 3);
  Bytes good = idx_bytes(kImg, {4, 28, 28}, pixels);
  Bytes good_gz = gzip_bytes(good);

  struct Case {
    std::string name;
    Bytes bytes;
    bool labels;
    std::string expect;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", {}, false, "too short for an IDX file"});
  cases.push_back({"short", {0, 0}, false, "too short for an IDX file"});
  cases.push_back({"bad-magic", idx_bytes(0x12345678, {4, 28, 28}, pixels), false, "bad magic 0x12345678"});
  cases.push_back({"float-type", idx_bytes(0x00000D03, {4, 28, 28}, pixels), false, "bad magic 0x00000d03"});
  cases.push_back({"wrong-ndims", idx_bytes(0x00000802, {4, 784}, pixels), false,
                   "declares 2 dimensions, expected 3"});
  cases.push_back({"labels-as-images", idx_bytes(kLab, {4}, {1, 2, 3, 4}), false,
                   "declares 1 dimensions, expected 3"});
  cases.push_back({"images-as-labels", good, true, "declares 3 dimensions, expected 1"});
  cases.push_back({"truncated-header", Bytes(good.begin(), good.begin() + 10), false,
                   "truncated IDX header"});
  cases.push_back({"zero-rows", idx_bytes(kImg, {4, 0, 28}, {}), false, "is 0"});
  cases.push_back({"count-beyond-data", idx_bytes(kImg, {5, 28, 28}, pixels), false,
                   "the header declares 5 images of 28x28 (3920 bytes) but the file holds only 3136"});
  cases.push_back({"count-beyond-data-gz", gzip_bytes(idx_bytes(kImg, {5, 28, 28}, pixels)), false,
                   "but the decompressed data holds only 3136 bytes"});
  cases.push_back({"2^31-images", idx_bytes(kImg, {0x80000000u, 28, 28}, pixels), false,
                   "more than the 2 GiB an IDX file may hold"});
  cases.push_back({"2^31-images-gz", gzip_bytes(idx_bytes(kImg, {0x80000000u, 28, 28}, pixels)), false,
                   "more than the 2 GiB an IDX file may hold"});
  cases.push_back({"2^32-1-labels-gz", gzip_bytes(idx_bytes(kLab, {0xFFFFFFFFu}, {1, 2})), true,
                   "more than the 2 GiB an IDX file may hold"});
  cases.push_back({"truncated-gz", Bytes(good_gz.begin(), good_gz.begin() + good_gz.size() / 2), false,
                   "truncated gzip stream"});
  cases.push_back({"truncated-gz-trailer", Bytes(good_gz.begin(), good_gz.end() - 3), false,
                   "truncated gzip stream"});
  Bytes bad_crc = good_gz;
  bad_crc[bad_crc.size() - 8] ^= 0xFF;  // CRC-32 in the trailer
  cases.push_back({"bad-crc-gz", bad_crc, false, "corrupt gzip data (incorrect data check)"});
  Bytes bad_block = good_gz;
  bad_block[10] = 0xFF;  // first deflate block: reserved block type 3
  cases.push_back({"bad-block-gz", bad_block, false, "corrupt gzip data (invalid block type)"});
  Bytes trailing = good;
  trailing.insert(trailing.end(), {1, 2, 3});
  cases.push_back({"trailing-raw", trailing, false, "3 bytes of trailing data after the 4 images of 28x28"});
  cases.push_back({"trailing-in-gz", gzip_bytes(trailing), false,
                   "trailing data after the 4 images of 28x28 the header declares (the file inflates past its "
                   "declared size)"});
  Bytes garbage_after = good_gz;
  garbage_after.insert(garbage_after.end(), {'j', 'u', 'n', 'k', '!'});
  cases.push_back({"garbage-after-gz", garbage_after, false, "5 bytes of trailing garbage after the gzip data"});
  cases.push_back({"label-too-big", idx_bytes(kLab, {4}, {1, 9, 10, 2}), true,
                   "label 10 at index 2 is not below the number of classes (10)"});

  for (const auto& c : cases) {
    INFO("case " << c.name);
    std::string path = dir + "/" + c.name;
    write_bytes(path, c.bytes);
    auto t0 = std::chrono::steady_clock::now();
    std::string err = error_of([&] {
      if (c.labels) read_idx_labels(path);
      else read_idx_images(path);
    });
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    INFO("error: " << err);
    CHECK(err.find(path + ": ") == 0);  // names the file first
    CHECK(err.find(c.expect) != std::string::npos);
    CHECK(ms < 2000);  // refused, not attempted
  }
  // A missing file.
  CHECK(error_of([&] { read_idx_images(dir + "/nope"); }).find("cannot open") != std::string::npos);

  // Images and labels that disagree on the count.
  write_bytes(dir + "/img", good);
  write_bytes(dir + "/lab", idx_bytes(kLab, {3}, {1, 2, 3}));
  std::string err = error_of([&] { load_dataset(dir + "/img", dir + "/lab"); });
  INFO(err);
  CHECK(err.find("holds 4 images but " + dir + "/lab holds 3 labels") != std::string::npos);
}

TEST_CASE("load_split finds <root>/<dataset>/ files and says how to get missing ones") {
  std::string root = scratch_dir("split_missing");
  std::string err = error_of([&] { load_split(root, "mnist", Split::test); });
  INFO(err);
  CHECK(err.find(root + "/mnist/t10k-images-idx3-ubyte.gz: not found") == 0);
  CHECK(err.find("run `mnistctl fetch --dataset mnist --data-dir " + root + "` to download mnist") != std::string::npos);
  CHECK(err.find("$MNISTCTL_DATA") != std::string::npos);
  // The command shown can be pasted into a shell whatever the folder's name holds.
  const std::string odd = root + "/my data's";
  err = error_of([&] { load_split(odd, "mnist", Split::test); });
  INFO(err);
  CHECK(err.find("run `mnistctl fetch --dataset mnist --data-dir '" + root + "/my data'\\''s'` to download") !=
        std::string::npos);

  err = error_of([&] { load_split(root, "emnist", Split::test); });
  CHECK(err == "unknown dataset 'emnist' (known: mnist, fashion-mnist); did you mean 'mnist'?");

  // --data-dir naming the dataset's own folder instead of the one above it.
  const std::string own = root + "/own/mnist";
  std::filesystem::create_directories(own);
  write_bytes(own + "/t10k-images-idx3-ubyte.gz", {1, 2, 3});
  err = error_of([&] { load_split(own + "/", "mnist", Split::test); });
  INFO(err);
  CHECK(err.find("holds the mnist files itself: --data-dir takes the folder above it (" + root + "/own)") !=
        std::string::npos);
  // A folder of another name: the folder above would not hold mnist/ either.
  const std::string other = root + "/own/digits";
  std::filesystem::create_directories(other);
  write_bytes(other + "/t10k-images-idx3-ubyte", {1, 2, 3});
  err = error_of([&] { load_split(other, "mnist", Split::test); });
  INFO(err);
  CHECK(err.find("holds the mnist files itself: --data-dir takes a folder with them in its mnist/ (move them into " +
                 other + "/mnist)") != std::string::npos);

  // Decompressed copies are found too.
  std::filesystem::create_directories(root + "/mnist");
  Bytes px = pattern(2 * 28 * 28, 9);
  write_bytes(root + "/mnist/t10k-images-idx3-ubyte", idx_bytes(kImg, {2, 28, 28}, px));
  write_bytes(root + "/mnist/t10k-labels-idx1-ubyte.gz", gzip_bytes(idx_bytes(kLab, {2}, {7, 2})));
  Dataset ds = load_split(root, "mnist", Split::test);
  CHECK(ds.name == "mnist/test");
  CHECK(ds.count == 2);
  CHECK(ds.images == px);
  CHECK(dataset_dir(root + "/", "mnist") == root + "/mnist");

  // Files of another image size than the dataset's are named at once, not met later as a
  // pixel count the network does not expect.
  write_bytes(root + "/mnist/t10k-images-idx3-ubyte", idx_bytes(kImg, {2, 14, 14}, pattern(2 * 14 * 14, 3)));
  err = error_of([&] { load_split(root, "mnist", Split::test); });
  INFO(err);
  CHECK(err.find(root + "/mnist/t10k-images-idx3-ubyte: holds 14x14 images, but mnist images are 28x28") == 0);
}

TEST_CASE("load_split on a present but broken file says how to download it again") {
  std::string root = scratch_dir("split_broken");
  const std::string d = root + "/mnist";
  std::filesystem::create_directories(d);
  const std::string img = d + "/t10k-images-idx3-ubyte.gz", lab = d + "/t10k-labels-idx1-ubyte.gz";
  Bytes px = pattern(3 * 28 * 28, 5);
  Bytes good_img = gzip_bytes(idx_bytes(kImg, {3, 28, 28}, px));
  Bytes good_lab = gzip_bytes(idx_bytes(kLab, {3}, {1, 2, 3}));
  write_bytes(lab, good_lab);
  // The fetch that repairs it: into the same --data-dir.
  const std::string hint = " (run `mnistctl fetch --dataset mnist --data-dir " + root + " --force` to download it again)";

  Bytes bad_crc = good_img;
  bad_crc[bad_crc.size() - 8] ^= 0xFF;
  struct Case {
    const char* name;
    Bytes images, labels;
    std::string file, expect;
  };
  for (const Case& c : {
           Case{"truncated", Bytes(good_img.begin(), good_img.begin() + good_img.size() / 2),
                good_lab, img, "truncated gzip stream"},
           Case{"bad crc", bad_crc, good_lab, img, "corrupt gzip data (incorrect data check)"},
           Case{"bad header", gzip_bytes(idx_bytes(0x12345678, {3, 28, 28}, px)), good_lab, img,
                "bad magic 0x12345678"},
           Case{"count mismatch", good_img, gzip_bytes(idx_bytes(kLab, {2}, {1, 2})), img,
                "holds 3 images but"},
       }) {
    INFO("case " << c.name);
    write_bytes(img, c.images);
    write_bytes(lab, c.labels);
    std::string err = error_of([&] { load_split(root, "mnist", Split::test); });
    INFO("error: " << err);
    CHECK(err.find(c.file) == 0);  // names the broken file first
    CHECK(err.find(c.expect) != std::string::npos);
    REQUIRE(err.size() > hint.size());
    CHECK(err.compare(err.size() - hint.size(), hint.size(), hint) == 0);  // appended, once
    CHECK(err.find("--force") == err.rfind("--force"));
    CHECK(err.find('\n') == std::string::npos);
  }
  // Not broken files: no such hint (a missing file has its own advice; a bad limit is usage).
  write_bytes(img, good_img);
  write_bytes(lab, good_lab);
  CHECK(load_split(root, "mnist", Split::test).count == 3);
  CHECK(error_of([&] { load_split(root, "mnist", Split::test, -1); }).find("--force") == std::string::npos);
  std::string missing = error_of([&] { load_split(root, "mnist", Split::train); });
  CHECK(missing.find("not found") != std::string::npos);
  CHECK(missing.find("--force") == std::string::npos);
}

TEST_CASE("Real MNIST counts / first labels / per-class counts") {
  std::string dir = mnist_dir();
  if (dir.empty()) missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
  std::string root = std::filesystem::path(dir).parent_path().string();
  auto t0 = std::chrono::steady_clock::now();
  Dataset train = load_dataset(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("loaded mnist/train (60000 images, 47 MB uint8) in " << s << " s");
  CHECK(train.count == 60000);
  CHECK(train.rows == 28);
  CHECK(train.cols == 28);
  CHECK(train.images.size() == size_t(60000) * 784);
  CHECK(Bytes(train.labels.begin(), train.labels.begin() + 10) == Bytes({5, 0, 4, 1, 9, 2, 1, 3, 1, 4}));

  Dataset test = std::filesystem::path(dir).filename() == "mnist"
                     ? load_split(root, "mnist", Split::test)
                     : load_dataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  CHECK(test.count == 10000);
  CHECK(Bytes(test.labels.begin(), test.labels.begin() + 10) == Bytes({7, 2, 1, 0, 4, 1, 4, 9, 5, 9}));
  std::array<int, 10> per{};
  for (uint8_t l : test.labels) per[l]++;
  CHECK(per == std::array<int, 10>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
  double mean = 0;
  for (uint8_t p : test.images) mean += p;
  mean /= 255.0 * static_cast<double>(test.images.size());
  WARN("test pixel mean " << mean << " (published 0.132515), diff " << std::abs(mean - 0.132515));
  CHECK(std::abs(mean - 0.132515) < 1e-5);

  Dataset few = load_dataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz", 100);
  CHECK(few.count == 100);
  CHECK(few.images == Bytes(test.images.begin(), test.images.begin() + 100 * 784));
}
