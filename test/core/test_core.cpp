// core: the RNG's output is the specified one (so shuffles and weights are the same on
// every machine), atomic writes, JSON strings, shapes, output lines against a stalled reader.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/huge_pages.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/shape.h"
#include "core/shell_word.h"
#include "core/stop_signals.h"
#include "test_util.h"

using namespace mnistctl;
using mnistctl::test::error_of;
namespace fs = std::filesystem;

TEST_CASE("Pcg32 reproduces the reference PCG32 output") {
  // pcg32-demo from the PCG reference implementation: pcg32_srandom_r(&rng, 42u, 54u).
  Pcg32 rng(42, 54);
  const uint32_t expected[] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u, 0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
  for (uint32_t e : expected) CHECK(rng.next_u32() == e);
}

TEST_CASE("Pcg32 bounded draws are uniform and in range") {
  Pcg32 rng(7);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 100000; ++i) {
    uint32_t v = rng.below(10);
    REQUIRE(v < 10);
    ++counts[v];
  }
  for (int c : counts) CHECK(std::abs(c - 10000) < 500);  // about 5 standard deviations
  for (int i = 0; i < 1000; ++i) {
    float u = rng.uniform();
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
  }
}

TEST_CASE("hash_uniform is a pure function of seed and counter") {
  CHECK(hash_uniform(1, 2) == hash_uniform(1, 2));
  CHECK(hash_uniform(1, 2) != hash_uniform(1, 3));
  CHECK(hash_uniform(1, 2) != hash_uniform(2, 2));
  double mean = 0;
  for (uint64_t i = 0; i < 100000; ++i) mean += hash_uniform(99, i);
  CHECK(mean / 100000 == Approx(0.5).margin(0.01));
}

TEST_CASE("write_file_atomic replaces a file whole and leaves no temporary behind") {
  std::string dir = test::scratch_dir("core-atomic");
  std::string path = dir + "/f.txt";
  write_file_atomic(path, std::string("first version, longer"));
  write_file_atomic(path, std::string("second"));
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "second");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);
  CHECK_THROWS_AS(write_file_atomic(dir + "/no/such/folder/f", std::string("x")), Error);
  try {
    read_file(dir + "/missing");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("missing") != std::string::npos);
  }
}

TEST_CASE("write_file_atomic writes through a symbolic link: the target changes, the link stays") {
  std::string dir = test::scratch_dir("core-atomic-link");
  fs::create_directories(dir + "/real");
  write_file_atomic(dir + "/real/target.txt", std::string("old"));
  fs::create_symlink("real/target.txt", dir + "/link.txt");      // relative, as ln -s makes
  fs::create_symlink(dir + "/link.txt", dir + "/link2.txt");     // a chain
  fs::create_symlink("real/new.txt", dir + "/dangling.txt");     // to a file not there yet
  write_file_atomic(dir + "/link2.txt", std::string("new"));
  CHECK(fs::is_symlink(fs::symlink_status(dir + "/link.txt")));
  CHECK(fs::is_symlink(fs::symlink_status(dir + "/link2.txt")));
  CHECK(test::read_text(dir + "/real/target.txt") == "new");
  write_file_atomic(dir + "/dangling.txt", std::string("made"));
  CHECK(fs::is_symlink(fs::symlink_status(dir + "/dangling.txt")));
  CHECK(test::read_text(dir + "/real/new.txt") == "made");
  int files = 0;  // no temporary left beside the links or the targets
  for (const auto& e : fs::recursive_directory_iterator(dir)) files += e.path().string().find(".tmp.") != std::string::npos;
  CHECK(files == 0);
  fs::create_symlink("loop.txt", dir + "/loop.txt");
  CHECK(error_of([&] { write_file_atomic(dir + "/loop.txt", std::string("x")); }) ==
        dir + "/loop.txt: too many levels of symbolic links");
}

TEST_CASE("write_file_atomic writes into a device in place and never renames over it") {
  write_file_atomic("/dev/null", std::string("discarded"));
  struct stat st;
  REQUIRE(::stat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));  // still the device, not a regular file
  std::string dir = test::scratch_dir("core-atomic-dir");
  CHECK_THROWS_AS(write_file_atomic(dir, std::string("x")), Error);
}

TEST_CASE("read_file refuses a folder and a FIFO by name, without opening (a FIFO would block)") {
  const std::string dir = test::scratch_dir("core-read-file");
  fs::create_directories(dir + "/last.ckpt");
  CHECK_THAT(error_of([&] { read_file(dir + "/last.ckpt"); }), Catch::Contains("last.ckpt: is a folder, expected a file"));
  const std::string fifo = dir + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THAT(error_of([&] { read_file(fifo); }), Catch::Contains("fifo: not a regular file"));
  CHECK_THAT(error_of([&] { read_file(dir + "/missing"); }), Catch::Contains("missing: cannot open"));
}

TEST_CASE("a line to a reader that stalls waits for it, and is given up once a stop signal came") {
  // mpirun stops reading its ranks' output while it stops a job: a rank 0 held in a progress
  // line must still reach its checkpoint. Standard output here is a pipe filled to the brim.
  int p[2];
  REQUIRE(::pipe(p) == 0);
  REQUIRE(::fcntl(p[1], F_SETFL, O_NONBLOCK) == 0);
  const std::string chunk(4096, 'x');
  while (::write(p[1], chunk.data(), chunk.size()) > 0) {
  }
  REQUIRE(::fcntl(p[1], F_SETFL, 0) == 0);
  std::fflush(stdout);
  const int saved = ::dup(STDOUT_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(::dup2(p[1], STDOUT_FILENO) == STDOUT_FILENO);

  StopSignals signals;  // clears stop_signal()
  std::atomic<bool> done{false};
  std::thread writer([&] {
    out_line("Epoch[1] Batch[5/10] a progress line");
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const bool waited = !done;  // no stop yet: the reader is waited for
  set_stop_signal(SIGTERM);
  const auto t0 = std::chrono::steady_clock::now();
  while (!done && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const bool gave_up = done;
  // Drain the pipe so that a writer still blocked (the bug) finishes, then put stdout back.
  REQUIRE(::fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
  std::string buf(65536, '\0');
  while (!done) {
    if (::read(p[0], buf.data(), buf.size()) <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  writer.join();
  REQUIRE(::dup2(saved, STDOUT_FILENO) == STDOUT_FILENO);
  ::close(saved);
  ::close(p[1]);
  std::string rest;
  for (ssize_t n; (n = ::read(p[0], buf.data(), buf.size())) > 0;) rest.append(buf.data(), static_cast<size_t>(n));
  ::close(p[0]);
  set_stop_signal(0);
  CHECK(waited);
  CHECK(gave_up);
  CHECK(rest.find("a progress line") == std::string::npos);  // given up whole, not written late
}

TEST_CASE("lines to a non-blocking stdout whose reader is slow all arrive, none is an error") {
  // A pipe shared with other writers, or a parent's O_NONBLOCK: a write may meet EAGAIN.
  int p[2];
  REQUIRE(::pipe(p) == 0);
  REQUIRE(::fcntl(p[1], F_SETFL, O_NONBLOCK) == 0);
  std::fflush(stdout);
  const int saved = ::dup(STDOUT_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(::dup2(p[1], STDOUT_FILENO) == STDOUT_FILENO);
  ::close(p[1]);
  std::string got;
  std::thread reader([&] {
    std::string buf(4096, '\0');
    for (ssize_t n; (n = ::read(p[0], buf.data(), buf.size())) > 0;) {
      got.append(buf.data(), static_cast<size_t>(n));
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  constexpr int kLines = 3000;
  int written = 0;
  for (int i = 0; i < kLines; ++i) written += out_line("Epoch[1] Batch[" + std::to_string(i) + "/3000] a line") ? 1 : 0;
  const bool failed = std::ferror(stdout) != 0;
  REQUIRE(::dup2(saved, STDOUT_FILENO) == STDOUT_FILENO);  // the pipe's last writer goes: EOF
  ::close(saved);
  out_line("");  // drops the stream's private descriptor of the old pipe (it was pointed elsewhere)
  reader.join();
  ::close(p[0]);
  CHECK(written == kLines);
  CHECK_FALSE(failed);
  CHECK(std::count(got.begin(), got.end(), '\n') == kLines);
}

TEST_CASE("json_string escapes quotes and control characters") {
  CHECK(json_string("a\"b\\c\n") == "\"a\\\"b\\\\c\\u000a\"");
}

TEST_CASE("json_string keeps UTF-8 and turns bytes that are not UTF-8 into U+FFFD") {
  // Well-formed: 2-, 3- and 4-byte sequences pass unchanged.
  const std::string good = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  CHECK(json_string(good) == "\"" + good + "\"");
  // A Latin-1 file name, a stray continuation byte, an overlong '/', a surrogate, a cut-off
  // sequence at the end, and a byte above U+10FFFF.
  CHECK(json_string("bad\xff\x01.png") == "\"bad\\ufffd\\u0001.png\"");
  CHECK(json_string("\x80" "a") == "\"\\ufffda\"");
  CHECK(json_string("\xc0\xaf") == "\"\\ufffd\\ufffd\"");
  CHECK(json_string("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");
  CHECK(json_string("x\xe2\x82") == "\"x\\ufffd\\ufffd\"");
  CHECK(json_string("\xf5\x80\x80\x80") == "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

TEST_CASE("shell_word gives back the word itself when a shell reads it") {
  CHECK(shell_word("runs/lenet-1") == "runs/lenet-1");  // plain words stay readable
  CHECK(shell_word("") == "''");
  for (const std::string w : {"my runs", "it's", "$HOME", "a;b", "`x`", "*", "~", "a\"b\\c", "new\nline", "", "-x"}) {
    // printf's output, through the shell, compared byte for byte.
    std::FILE* p = ::popen(("printf '%s' " + shell_word(w)).c_str(), "r");
    REQUIRE(p != nullptr);
    std::string got;
    char buf[256];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) got.append(buf, n);
    CHECK(::pclose(p) == 0);
    INFO("word: " << w << " quoted: " << shell_word(w));
    CHECK(got == w);
  }
}

TEST_CASE("Shape arithmetic") {
  Shape s{100, 1, 28, 28};
  CHECK(s.numel() == 78400);
  CHECK(s.per_sample() == 784);
  CHECK(s.str() == "100x1x28x28");
}

// ---- skips (test_util.h) ------------------------------------------------------------------
// A skip that comes after an assertion would hide what was checked (ctest shows "Skipped"
// whatever failed before it): skip_test turns it into a failure. The two children run in
// their own processes, started by the test below.
TEST_CASE("skip-after-assert child", "[.][skip-after-assert-child]") {
  CHECK(1 + 1 == 2);
  mnistctl::test::skip_test("pretending the GPU is absent, after an assertion");
}
TEST_CASE("skip-first child", "[.][skip-first-child]") {
  WARN("a warning is not an assertion");
  mnistctl::test::skip_test("pretending the GPU is absent, before any assertion");
}

TEST_CASE("a test may skip before its first assertion only") {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  auto run = [&](const std::string& tag, std::string& out) {
    FILE* p = popen(("'" + self + "' '" + tag + "' 2>&1").c_str(), "r");
    REQUIRE(p);
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string late, first;
  int late_code = run("[skip-after-assert-child]", late);
  int first_code = run("[skip-first-child]", first);
  INFO(late << first);
  CHECK(late_code == 1);
  CHECK(late.find("FAIL: test skipped after 1 assertion(s)") != std::string::npos);
  CHECK(first_code == mnistctl::test::kSkipReturnCode);
  CHECK(first.find("SKIP: pretending the GPU is absent, before any assertion") != std::string::npos);
}

TEST_CASE("large buffers are advised onto huge pages, small ones are left alone") {
  std::vector<uint8_t> big;
  reserve_on_huge_pages(big, 8 * kHugePage);
  REQUIRE(big.capacity() >= 8 * kHugePage);
  big.resize(8 * kHugePage, 7);
  // A whole huge page inside the buffer carries the advice; the bytes are the ones written.
  const uint8_t* inner = big.data() + 2 * kHugePage;
  CHECK(test::advised_huge(inner));
  CHECK(std::all_of(big.begin(), big.end(), [](uint8_t b) { return b == 7; }));

  // Growing an empty vector only: one that already holds data keeps it (a plain reserve).
  std::vector<uint8_t> held = {1, 2, 3};
  reserve_on_huge_pages(held, 4 * kHugePage);
  REQUIRE(held.size() == 3);
  CHECK(held[0] == 1);
  CHECK(held[2] == 3);
  CHECK(held.capacity() >= 4 * kHugePage);

  // A range with no whole huge page in it is a no-op, not an error.
  std::vector<uint8_t> small(4096);
  advise_huge_pages(small.data(), small.size());
  CHECK_FALSE(test::advised_huge(small.data()));
  advise_huge_pages(nullptr, 0);
}

TEST_CASE("the huge-page mode and this process's huge-page bytes are read from the kernel") {
  const std::string mode = transparent_huge_pages_mode();
  if (std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled"))
    CHECK((mode == "always" || mode == "madvise" || mode == "never"));
  else
    CHECK(mode.empty());
  const int64_t bytes = process_huge_page_bytes();
  if (std::filesystem::exists("/proc/self/smaps_rollup")) {
    CHECK(bytes >= 0);
    CHECK(bytes % static_cast<int64_t>(kHugePage) == 0);  // whole huge pages
  } else {
    CHECK(bytes == -1);
  }
}
