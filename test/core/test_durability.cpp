// write_file_atomic's durability, observed at the system-call boundary: this executable
// defines fsync() itself (the static library's call binds to it), passes every call on to
// the kernel and records whether its descriptor was a folder. After a rename the folder
// must be synced too, or a power cut can bring back the old file. Also: output that
// cannot be written is exit 3 with the project's text, a lock refuses a second holder.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "test_util.h"

namespace {
int g_file_syncs = 0, g_dir_syncs = 0;
std::string g_dir_synced;
}  // namespace

extern "C" int fsync(int fd) {
  struct stat st;
  if (::fstat(fd, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      ++g_dir_syncs;
      char link[64], target[4096] = {};
      std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      ssize_t n = ::readlink(link, target, sizeof target - 1);
      if (n > 0) g_dir_synced.assign(target, static_cast<size_t>(n));
    } else {
      ++g_file_syncs;
    }
  }
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

using namespace mnistctl;
namespace fs = std::filesystem;

TEST_CASE("write_file_atomic syncs the file and then its folder") {
  std::string dir = test::scratch_dir("durability-fsync");
  g_file_syncs = g_dir_syncs = 0;
  g_dir_synced.clear();
  write_file_atomic(dir + "/out.txt", std::string("hello\n"));
  CHECK(g_file_syncs == 1);
  CHECK(g_dir_syncs == 1);
  CHECK(fs::equivalent(g_dir_synced, dir));
  std::ifstream in(dir + "/out.txt");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  CHECK(text == "hello\n");
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename() == "out.txt");
}

TEST_CASE("an output that cannot be created is a runtime failure (exit 3) naming the path") {
  std::string dir = test::scratch_dir("durability-missing");
  try {
    write_file_atomic(dir + "/no/such/folder/out.txt", std::string("x"));
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitRuntime);
    CHECK(std::string(e.what()).find("out.txt: cannot create") != std::string::npos);
  }
}

TEST_CASE("a folder lock refuses a second holder, naming the first's process id, and dies with it") {
  std::string dir = test::scratch_dir("durability-lock");
  int ready[2], done[2];
  REQUIRE(pipe(ready) == 0);
  REQUIRE(pipe(done) == 0);
  pid_t child = fork();
  if (child == 0) {
    FolderLock lock(dir, "the run folder");
    char c = 1;
    (void)!write(ready[1], &c, 1);
    (void)!read(done[0], &c, 1);  // hold until told
    _exit(0);
  }
  char c;
  REQUIRE(read(ready[0], &c, 1) == 1);
  try {
    FolderLock second(dir, "the run folder");
    FAIL("expected the second lock to be refused");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("process " + std::to_string(child)) != std::string::npos);
  }
  kill(child, SIGKILL);  // dies holding it: the kernel releases the lock
  int status = 0;
  waitpid(child, &status, 0);
  CHECK_NOTHROW(FolderLock(dir, "the run folder"));
}

TEST_CASE("reading a folder as a file says so") {
  std::string dir = test::scratch_dir("durability-readdir");
  try {
    read_file(dir);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("is a folder") != std::string::npos);
  }
}
