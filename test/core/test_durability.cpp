// Durable writes: write_file_atomic fsyncs the temporary file, renames it, then fsyncs the
// folder (without that, a crash after the rename can lose the new name). fsync is
// interposed here, in the test executable, so the library's real calls are observed: the
// static core library resolves fsync to this definition, which records whether the
// descriptor is a folder and which path it names, then makes the real system call.
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/shape.h"
#include "test_util.h"

namespace {
std::vector<std::pair<bool, std::string>> g_fsyncs;  // (is a folder, path)
}

extern "C" int fsync(int fd) {
  struct stat st {};
  char link[64], path[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(link, path, sizeof path - 1);
  if (n > 0 && ::fstat(fd, &st) == 0) {
    path[n] = 0;
    g_fsyncs.emplace_back(S_ISDIR(st.st_mode), path);
  }
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

using namespace mnistctl;
namespace fs = std::filesystem;

TEST_CASE("write_file_atomic fsyncs the file, then its folder after the rename") {
  const std::string dir = fs::canonical(test::scratch_dir("durable-write")).string();
  g_fsyncs.clear();
  write_file_atomic(dir + "/out.txt", std::string("hello\n"));
  for (const auto& [is_dir, p] : g_fsyncs) INFO((is_dir ? "dir  " : "file ") << p);
  REQUIRE(g_fsyncs.size() >= 2);
  // The temporary file first (its name, before the rename), the folder last.
  CHECK_FALSE(g_fsyncs.front().first);
  CHECK(g_fsyncs.front().second.rfind(dir + "/out.txt.tmp.", 0) == 0);
  CHECK(g_fsyncs.back().first);
  CHECK(g_fsyncs.back().second == dir);
  CHECK(fs::exists(dir + "/out.txt"));
}

TEST_CASE("an output that cannot be created is an I/O failure (exit 3) naming it") {
  const std::string dir = test::scratch_dir("durable-nodir");
  try {
    write_file_atomic(dir + "/no/such/folder/x.csv", std::string("x"));
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitRuntime);
    CHECK(std::string(e.what()).find("no/such/folder/x.csv: cannot create") != std::string::npos);
  }
}

TEST_CASE("shape arithmetic refuses sizes that overflow 64 bits") {
  Shape big{1 << 30, 1 << 30, 1 << 30};  // 2^90 elements
  try {
    (void)big.numel();
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("1073741824x1073741824x1073741824") != std::string::npos);
  }
  CHECK_THROWS_AS(Shape({4, 1LL << 62, 4}).per_sample(), Error);
  CHECK(Shape({3, 1LL << 31, 1LL << 31}).per_sample() == (1LL << 62));
  CHECK_THROWS_AS(checked_mul(1LL << 40, 1LL << 40, "x"), Error);
  CHECK(checked_mul(1LL << 30, 1LL << 32, "x") == (1LL << 62));
  CHECK_THROWS_AS(checked_add(INT64_MAX, 1, "x"), Error);
}
