// IdxImageStream: the same images as read_idx_images, a batch at a time, with the same checks;
// damage found part-way is reported at the image where it is.
#include <catch2/catch.hpp>

#include <string>

#include "core/error.h"
#include "data/idx.h"
#include "data/idx_stream.h"
#include "data_helpers.h"
#include "test_util.h"
#include "usage_error.h"

using namespace mnistctl;
using namespace mnistctl::test;

namespace {

std::string stream_error(const std::string& path, int64_t batch = 3) {
  return usage_error_from(
      [&] {
        IdxImageStream s(path);
        std::vector<uint8_t> buf;
        while (s.next(batch, buf) > 0) {
        }
      },
      "streaming " + path);
}

}  // namespace

TEST_CASE("IdxImageStream hands out the file's images in batches, raw and gzip") {
  std::string dir = scratch_dir("idx_stream");
  const Bytes px = pattern(10 * 4 * 5, 7);
  const Bytes raw = idx_bytes(0x00000803, {10, 4, 5}, px);
  write_bytes(dir + "/raw.idx", raw);
  write_bytes(dir + "/gz.idx.gz", gzip_bytes(raw));
  for (const char* name : {"/raw.idx", "/gz.idx.gz"}) {
    INFO(name);
    IdxImageStream s(dir + name);
    CHECK(s.count() == 10);
    CHECK(s.rows() == 4);
    CHECK(s.cols() == 5);
    Bytes all, buf;
    std::vector<int64_t> sizes;
    for (int64_t n; (n = s.next(4, buf)) > 0;) {
      sizes.push_back(n);
      CHECK(buf.size() == size_t(n) * 20);
      all.insert(all.end(), buf.begin(), buf.end());
    }
    CHECK(sizes == std::vector<int64_t>{4, 4, 2});
    CHECK(all == px);
    CHECK(all == read_idx_images(dir + name).pixels);
    CHECK(s.next(4, buf) == 0);  // stays at the end
  }
}

TEST_CASE("IdxImageStream refuses what read_idx_images refuses, naming the file") {
  std::string dir = scratch_dir("idx_stream_bad");
  auto put = [&](const std::string& name, const Bytes& b) {
    write_bytes(dir + "/" + name, b);
    return dir + "/" + name;
  };
  const Bytes px = pattern(6 * 4, 3);
  std::string p = put("labels.idx", idx_bytes(0x00000801, {6}, Bytes(6, 1)));
  CHECK(stream_error(p) == p + ": IDX header declares 1 dimensions, expected 3 (count, rows, cols) for images (magic "
                             "0x00000803)");
  p = put("bomb.idx.gz", gzip_bytes(idx_bytes(0x00000803, {0xFFFFFFFFu, 28, 28}, {})));
  CHECK(stream_error(p).find(p + ": IDX header declares images 4294967295x28x28 (count, rows, cols), more than the 2 GiB") ==
        0);
  p = put("zero.idx", idx_bytes(0x00000803, {0, 28, 28}, {}));
  CHECK(stream_error(p).find(p + ": IDX dimension 0 (count, rows, cols) is 0") == 0);
  p = put("short.idx", idx_bytes(0x00000803, {6, 2, 2}, Bytes(px.begin(), px.begin() + 20)));
  CHECK(stream_error(p) == p + ": truncated: the header declares 6 images of 2x2 (24 bytes) but the file holds only 20 bytes of data");
  p = put("long.idx", idx_bytes(0x00000803, {5, 2, 2}, px));
  CHECK(stream_error(p) == p + ": 4 bytes of trailing data after the 5 images of 2x2 the header declares");
  // Gzip: the size is known only by reading, so damage is found where it is.
  p = put("short.idx.gz", gzip_bytes(idx_bytes(0x00000803, {6, 2, 2}, Bytes(px.begin(), px.begin() + 18))));
  CHECK(stream_error(p) == p + ": truncated: the header declares 6 images but the data ends inside image 4");
  p = put("long.idx.gz", gzip_bytes(idx_bytes(0x00000803, {5, 2, 2}, px)));
  CHECK(stream_error(p) == p + ": 4 bytes of trailing data after the 5 images the header declares");
  p = put("head.idx", Bytes{0, 0, 8, 3, 0, 0});
  CHECK(stream_error(p) == p + ": truncated IDX header (6 of 16 bytes)");
  CHECK(stream_error(dir + "/missing.idx").find(dir + "/missing.idx: cannot open") == 0);
}

TEST_CASE("IdxImageStream hands out a cut-off gzip file's whole images, then names the cut") {
  std::string dir = scratch_dir("idx_stream_cut");
  const Bytes px = pattern(400 * 28 * 28, 11);
  const Bytes gz = gzip_bytes(idx_bytes(0x00000803, {400, 28, 28}, px));
  write_bytes(dir + "/cut.idx.gz", Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
  IdxImageStream s(dir + "/cut.idx.gz");
  Bytes buf;
  const int64_t n = s.next(1000, buf);  // one call asks for more than the file holds
  INFO("whole images before the cut: " << n);
  CHECK(n > 0);
  CHECK(n < 400);
  CHECK(buf.size() == size_t(n) * 784);
  CHECK(buf == Bytes(px.begin(), px.begin() + n * 784));
  const std::string err = usage_error_from([&] { s.next(1000, buf); }, "the call after the cut");
  CHECK(err == dir + "/cut.idx.gz: truncated gzip stream (the file ends inside the compressed data)");
}

TEST_CASE("gzip_damage finds corrupt compressed data before anything is handed out") {
  std::string dir = scratch_dir("idx_gzip_damage");
  const Bytes px = pattern(200 * 28 * 28, 5);
  const Bytes raw = idx_bytes(0x00000803, {200, 28, 28}, px);
  const Bytes gz = gzip_bytes(raw);
  write_bytes(dir + "/good.idx.gz", gz);
  write_bytes(dir + "/raw.idx", raw);
  CHECK(gzip_damage(dir + "/good.idx.gz").empty());
  CHECK(gzip_damage(dir + "/raw.idx").empty());
  // A failed CRC: the data decodes, only the check at the end tells.
  Bytes crc = gz;
  crc[crc.size() - 6] ^= 0xFF;
  write_bytes(dir + "/crc.idx.gz", crc);
  CHECK(gzip_damage(dir + "/crc.idx.gz") == dir + "/crc.idx.gz: corrupt gzip data (incorrect data check)");
  // A cut is not damage to what comes before it: the stream reports it where it is.
  write_bytes(dir + "/cut.idx.gz", Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
  CHECK(gzip_damage(dir + "/cut.idx.gz").empty());
  CHECK(usage_error_from([&] { gzip_damage(dir + "/missing.gz"); }, "missing").find("cannot open") != std::string::npos);
  // It reads no further than the stream would: the declared images and 64 MiB past them. A
  // small file that inflates far past its header costs no more (here its failed check lies
  // beyond that, and the stream reports the trailing data instead).
  {  // deflated as a stream: the test itself stays small in memory
    gzFile f = gzopen((dir + "/bomb.idx.gz").c_str(), "wb9");
    REQUIRE(f);
    REQUIRE(gzwrite(f, raw.data(), static_cast<unsigned>(raw.size())) == static_cast<int>(raw.size()));
    const Bytes zeros(size_t{1} << 20, 0);
    for (int mib = 0; mib < 66; ++mib) REQUIRE(gzwrite(f, zeros.data(), static_cast<unsigned>(zeros.size())) > 0);
    REQUIRE(gzclose(f) == Z_OK);
  }
  const std::string text = read_text(dir + "/bomb.idx.gz");
  Bytes bomb(text.begin(), text.end());
  bomb[bomb.size() - 6] ^= 0xFF;
  write_bytes(dir + "/bomb.idx.gz", bomb);
  CHECK(bomb.size() < (size_t{1} << 20));
  CHECK(gzip_damage(dir + "/bomb.idx.gz").empty());
  const std::string trailing = stream_error(dir + "/bomb.idx.gz", 500);
  CHECK(trailing.find(dir + "/bomb.idx.gz: over 671") == 0);
  CHECK(trailing.find("bytes of trailing data after the 200 images the header declares") != std::string::npos);
}
