// Checkpoints: a round trip keeps every byte of every tensor, and each kind of damage is
// refused with a message that says which check failed.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "usage_error.h"

using namespace mnistctl;

namespace {
Checkpoint sample() {
  Checkpoint c;
  c.config_yaml = "name: t\nnetwork: {layers: [{type: flatten}]}\n";
  c.meta["epoch"] = "3";
  c.meta["step"] = "1800";
  c.tensors.push_back({"param/fc1.weight", Shape{2, 3}, {1.5f, -2.f, 3.25f, 0.f, -0.f, 1e-30f}});
  c.tensors.push_back({"param/fc1.bias", Shape{2}, {7.f, 8.f}});
  return c;
}

std::string load_error(const std::string& path) {
  return test::usage_error_from([&] { load_checkpoint(path); }, "load_checkpoint(" + path + ")");
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& d) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
}

// Rewrites the trailing CRC so that only the structural checks can catch the damage.
void fix_crc(std::vector<uint8_t>& d) {
  uint32_t crc = static_cast<uint32_t>(crc32(0L, d.data(), static_cast<uInt>(d.size() - 4)));
  std::memcpy(d.data() + d.size() - 4, &crc, 4);
}
}  // namespace

TEST_CASE("a checkpoint round-trips exactly") {
  std::string dir = test::scratch_dir("ckpt-roundtrip");
  save_checkpoint(dir + "/a.ckpt", sample());
  Checkpoint c = load_checkpoint(dir + "/a.ckpt");
  Checkpoint s = sample();
  CHECK(c.config_yaml == s.config_yaml);
  CHECK(c.meta == s.meta);
  REQUIRE(c.tensors.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(c.tensors[i].name == s.tensors[i].name);
    CHECK(c.tensors[i].shape == s.tensors[i].shape);
    CHECK(std::memcmp(c.tensors[i].data.data(), s.tensors[i].data.data(), s.tensors[i].data.size() * 4) == 0);
  }
  CHECK(c.meta_int("epoch", "a") == 3);
  CHECK_THROWS_WITH(c.meta_int("batch", "a.ckpt"), Catch::Contains("no 'batch'"));
  // No temporary file is left behind.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("damaged checkpoints are refused with the failed check") {
  std::string dir = test::scratch_dir("ckpt-damage");
  save_checkpoint(dir + "/good.ckpt", sample());
  std::vector<uint8_t> good = read_file(dir + "/good.ckpt");

  SECTION("not a checkpoint") {
    write_bytes(dir + "/x", {'h', 'e', 'l', 'l', 'o'});
    CHECK_THAT(load_error(dir + "/x"), Catch::Contains("not an mnistctl checkpoint"));
  }
  SECTION("a flipped bit") {
    auto d = good;
    d[d.size() / 2] ^= 0x10;
    write_bytes(dir + "/x", d);
    CHECK_THAT(load_error(dir + "/x"), Catch::Contains("checksum mismatch"));
  }
  SECTION("truncated") {
    auto d = good;
    d.resize(d.size() - 9);
    write_bytes(dir + "/x", d);
    CHECK_THAT(load_error(dir + "/x"), Catch::Contains("checksum mismatch"));
  }
  SECTION("a newer format version") {
    auto d = good;
    uint32_t v = 2;
    std::memcpy(d.data() + 8, &v, 4);
    write_bytes(dir + "/x", d);
    CHECK_THAT(load_error(dir + "/x"), Catch::Contains("version 2 is not supported"));
  }
  SECTION("a record count beyond the data, with a valid checksum") {
    auto d = good;
    uint32_t n = 99;
    std::memcpy(d.data() + 12, &n, 4);
    fix_crc(d);
    write_bytes(dir + "/x", d);
    CHECK_THAT(load_error(dir + "/x"), Catch::Contains("truncated"));
  }
  SECTION("a tensor extent that claims more than the file, with a valid checksum") {
    auto d = good;
    // The first tensor's first extent follows its name "param/fc1.weight" and the rank.
    std::string name = "param/fc1.weight";
    auto it = std::search(d.begin(), d.end(), name.begin(), name.end());
    REQUIRE(it != d.end());
    size_t at = static_cast<size_t>(it - d.begin()) + name.size() + 4;
    int64_t huge = int64_t(1) << 40;
    std::memcpy(d.data() + at, &huge, 8);
    fix_crc(d);
    write_bytes(dir + "/x", d);
    CHECK_THAT(load_error(dir + "/x"), Catch::Contains("fc1.weight"));
  }
}
