// IDX input bounded by its headers: a gzip file never inflates past header + declared size
// (trailing data is refused at its first byte), and a dataset whose image and label headers
// disagree is refused before any image is inflated (measured: the peak RSS of a child that
// loads such a pair, with 235 MB of declared images, stays far below them).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <catch2/catch.hpp>
#include <zlib.h>

#include "core/error.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data_helpers.h"
#include "test_util.h"

using namespace mnistctl;
using namespace mnistctl::test;

namespace {

// A gzip file: `head` then `zeros` zero bytes, deflated in a stream (never held whole).
void write_gzip_with_zeros(const std::string& path, const Bytes& head, int64_t zeros) {
  gzFile f = gzopen(path.c_str(), "wb1");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, head.data(), static_cast<unsigned>(head.size())) == static_cast<int>(head.size()));
  Bytes chunk(1 << 20, 0);
  for (int64_t left = zeros; left > 0;) {
    unsigned n = static_cast<unsigned>(std::min<int64_t>(left, static_cast<int64_t>(chunk.size())));
    REQUIRE(gzwrite(f, chunk.data(), n) == static_cast<int>(n));
    left -= n;
  }
  REQUIRE(gzclose(f) == Z_OK);
}

Bytes header(uint32_t magic, const std::vector<uint32_t>& dims) { return idx_bytes(magic, dims, {}); }

}  // namespace

TEST_CASE("a gzip IDX file is never inflated past its header's declared size") {
  const std::string dir = scratch_dir("idx-bomb");
  const std::string path = dir + "/bomb-images.gz";
  // 10 images as declared, then 256 MB of zeros (a few hundred kB compressed).
  write_gzip_with_zeros(path, header(0x00000803, {10, 28, 28}), 10 * 784 + (int64_t(256) << 20));
  try {
    (void)read_idx_images(path);
    FAIL("expected the trailing data to be refused");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("inflates past its declared size") != std::string::npos);
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
}

TEST_CASE("image and label counts are compared from the headers before the images are inflated") {
  const std::string dir = scratch_dir("idx-mismatch");
  const int64_t n = 300000;  // 235 MB of images declared (and present, as zeros)
  write_gzip_with_zeros(dir + "/images.gz", header(0x00000803, {static_cast<uint32_t>(n), 28, 28}), n * 784);
  write_bytes(dir + "/labels", idx_bytes(0x00000801, {5}, Bytes(5, 1)));
  std::fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      (void)load_dataset(dir + "/images.gz", dir + "/labels");
    } catch (const Error& e) {
      _exit(std::string(e.what()).find("holds 300000 images but") != std::string::npos &&
                    std::string(e.what()).find("holds 5 labels") != std::string::npos
                ? 0
                : 1);
    }
    _exit(2);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  struct rusage ru {};
  getrusage(RUSAGE_CHILDREN, &ru);
  INFO("child's peak RSS " << ru.ru_maxrss / 1024 << " MB");
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);   // refused with both counts named
  CHECK(ru.ru_maxrss < 100 * 1024);  // kB: far below the 235 MB of declared images
}

TEST_CASE("read_idx_header reads the extents alone and checks them like the readers") {
  const std::string dir = scratch_dir("idx-header");
  write_bytes(dir + "/a.gz", gzip_bytes(idx_bytes(0x00000803, {3, 28, 28}, Bytes(3 * 784, 7))));
  CHECK(read_idx_header(dir + "/a.gz", 3) == std::vector<int64_t>{3, 28, 28});
  write_bytes(dir + "/huge", header(0x00000803, {4000000, 28, 28}));
  CHECK_THROWS_AS(read_idx_header(dir + "/huge", 3), Error);  // over the 2 GiB an IDX file may hold
  CHECK_THROWS_AS(read_idx_header(dir + "/a.gz", 1), Error);  // images read as labels
}
