// The verified downloader against loopback servers that misbehave on purpose, local mirrors
// (file:// and plain folders), and the real MNIST files. Never touches the internet: every
// test sets MNISTCTL_NO_BUILTIN_MIRRORS=1 and short timeouts.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "data/fetch.h"
#include "data/idx.h"
#include "data/sha256.h"
#include "data_helpers.h"
#include "loopback_server.h"
#include "test_util.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

// Offline, fast settings for one test.
struct OfflineEnv {
  EnvGuard no_builtin{"MNISTCTL_NO_BUILTIN_MIRRORS", "1"};
  EnvGuard mirror{"MNISTCTL_MIRROR", std::nullopt};
  EnvGuard stall{"MNISTCTL_FETCH_STALL_SECONDS", "1"};
  EnvGuard connect{"MNISTCTL_FETCH_CONNECT_SECONDS", "2"};
  EnvGuard retries{"MNISTCTL_FETCH_RETRIES", "0"};
};

// A made-up dataset of four small, valid IDX files in `upstream`, with its catalog entry.
DatasetInfo tiny_dataset(const std::string& upstream) {
  fs::create_directories(upstream);
  DatasetInfo info;
  info.name = "tiny";
  auto make = [&](const std::string& name, const Bytes& content) {
    Bytes gz = gzip_bytes(content);
    write_bytes(upstream + "/" + name, gz);
    DataFile f;
    f.name = name;
    f.sha256 = sha256_hex(gz.data(), gz.size());
    f.bytes = static_cast<int64_t>(gz.size());
    return f;
  };
  info.train_images = make("train-images-idx3-ubyte.gz", idx_bytes(0x803, {30, 28, 28}, pattern(30 * 784, 1)));
  info.train_labels = make("train-labels-idx1-ubyte.gz", idx_bytes(0x801, {30}, Bytes(30, 3)));
  info.test_images = make("t10k-images-idx3-ubyte.gz", idx_bytes(0x803, {10, 28, 28}, pattern(10 * 784, 2)));
  info.test_labels = make("t10k-labels-idx1-ubyte.gz", idx_bytes(0x801, {10}, Bytes(10, 7)));
  return info;
}

// The loopback servers are python3 scripts: test tooling that scripts/setup.sh installs.
// Called first in a test, before any assertion.
void require_python() {
  if (python3().empty() || !fs::exists(python3()))
    missing_test_data("python3 not found, the loopback server tests need it");
}

// Files in a folder (to check that nothing half-downloaded is left behind).
std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  if (fs::exists(dir))
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void check_all_verified(const DatasetInfo& info, const std::string& dir) {
  for (const DataFile* f : info.files()) {
    INFO(f->name);
    REQUIRE(fs::exists(dir + "/" + f->name));
    CHECK(sha256_file(dir + "/" + f->name) == f->sha256);
  }
  CHECK(listing(dir).size() == 4u);  // no temporary files left
}

// The error of fetch_files (checked to be a RuntimeError, exit 3), or "".
std::string fetch_error(const DatasetInfo& info, const std::string& dir, const FetchRequest& req) {
  try {
    fetch_files(info, dir, req);
  } catch (const Error& e) {
    CHECK(e.code() == kExitRuntime);
    return e.what();
  }
  return "";
}

// Everything written to stderr (fd 2) while one scope runs: what `mnistctl fetch` prints
// before its final error.
class StderrCapture {
 public:
  explicit StderrCapture(const std::string& path) : path_(path) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    std::string all;
    for (const auto& l : read_lines(path_)) all += l + "\n";
    return all;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::string path_;
  int saved_ = -1;
};

// http://127.0.0.1:<port>/ where nothing listens (a port the kernel just handed out and
// that was closed again): connections are refused at once. No python needed.
std::string closed_port_url() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
}

// How many times `needle` occurs in `hay`.
size_t occurrences(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

const std::string kOfflineHint =
    " (offline? pass --mirror DIR or set MNISTCTL_MIRROR to a folder holding the .gz files)";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("SHA-256 (OpenSSL) matches the standard test vectors") {
  CHECK(sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 h;
  h.update("a", 1);
  h.update("bc", 2);
  CHECK(h.hex() == sha256_hex("abc", 3));
}

// Apart from the vectors above: a skip for absent data must come before any assertion.
TEST_CASE("SHA-256 of the real MNIST files matches the catalog") {
  std::string dir = mnist_dir();
  if (dir.empty()) missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
  const DatasetInfo& mnist = find_dataset("mnist");
  for (const DataFile* f : mnist.files()) {
    INFO(f->name);
    CHECK(sha256_file(dir + "/" + f->name) == f->sha256);
    CHECK(static_cast<int64_t>(fs::file_size(dir + "/" + f->name)) == f->bytes);
  }
}

TEST_CASE("Mirror order is --mirror then MNISTCTL_MIRROR then the built-in ones") {
  EnvGuard env("MNISTCTL_MIRROR", " http://a/x/, file:///b\n/c ,, http://a/x/ ");
  const DatasetInfo& mnist = find_dataset("mnist");
  {
    EnvGuard nb("MNISTCTL_NO_BUILTIN_MIRRORS", "1");
    CHECK(mirror_list(mnist, {"/first"}) ==
          std::vector<std::string>{"/first", "http://a/x/", "file:///b", "/c"});
  }
  EnvGuard nb("MNISTCTL_NO_BUILTIN_MIRRORS", std::nullopt);
  auto all = mirror_list(mnist, {});
  REQUIRE(all.size() == 6u);
  CHECK(all[3] == "https://ossci-datasets.s3.amazonaws.com/mnist/");
  CHECK(all[4] == "https://storage.googleapis.com/cvdf-datasets/mnist/");
  CHECK(all[5] == "http://yann.lecun.com/exdb/mnist/");
  auto fashion = mirror_list(find_dataset("fashion-mnist"), {});
  CHECK(fashion[3] == "/usr/share/datasets/fashion-mnist");
  CHECK(fashion[4] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/");
}

TEST_CASE("fetch from local mirrors (plain folder and file://) and already-verified files") {
  OfflineEnv env;
  std::string base = scratch_dir("fetch_local");
  DatasetInfo info = tiny_dataset(base + "/upstream");

  FetchRequest req;
  req.mirrors = {base + "/upstream"};
  CHECK(fetch_files(info, base + "/a", req) == base + "/a");
  check_all_verified(info, base + "/a");

  req.mirrors = {"file://" + base + "/upstream/"};
  fetch_files(info, base + "/b", req);
  check_all_verified(info, base + "/b");

  // Already present and verified: nothing is fetched (a mirror that can't work proves it).
  auto mtime = fs::last_write_time(base + "/b/" + info.train_images.name);
  req.mirrors = {base + "/no-such-folder"};
  fetch_files(info, base + "/b", req);
  CHECK(fs::last_write_time(base + "/b/" + info.train_images.name) == mtime);
  // ... unless forced.
  req.force = true;
  std::string err = fetch_error(info, base + "/b", req);
  CHECK(err.find(base + "/no-such-folder: folder not found") != std::string::npos);
  // The verified file is still there: a failed attempt never touches it.
  CHECK(sha256_file(base + "/b/" + info.train_images.name) == info.train_images.sha256);

  // A damaged file in place is fetched again.
  write_bytes(base + "/b/" + info.test_labels.name, Bytes{1, 2, 3});
  req.force = false;
  req.mirrors = {base + "/upstream"};
  fetch_files(info, base + "/b", req);
  check_all_verified(info, base + "/b");

  // The fetched files load.
  IdxImages im = read_idx_images(base + "/b/" + info.train_images.name);
  CHECK(im.count == 30);

  // No mirrors at all: a usage error that says what to do.
  req.mirrors.clear();
  fs::remove(base + "/b/" + info.test_labels.name);
  try {
    fetch_files(info, base + "/b", req);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
    CHECK(std::string(e.what()).find("--mirror") != std::string::npos);
  }
}

TEST_CASE("fetch over HTTP from a 404 mirror then a good one and none when already present") {
  require_python();
  OfflineEnv env;
  std::string base = scratch_dir("fetch_http");
  DatasetInfo info = tiny_dataset(base + "/upstream");
  LoopbackServer missing("404", base + "/upstream", base + "/404.log");
  LoopbackServer good("serve", base + "/upstream", base + "/good.log");

  FetchRequest req;
  req.mirrors = {missing.url(), good.url()};
  auto t0 = std::chrono::steady_clock::now();
  fetch_files(info, base + "/out", req);
  WARN("4 files over loopback (after 404s) in " << seconds_since(t0) << " s");
  check_all_verified(info, base + "/out");
  CHECK(read_lines(base + "/404.log").size() == 4u);
  CHECK(read_lines(base + "/good.log").size() == 4u);

  // Second run: everything verifies locally, no request reaches any server.
  fetch_files(info, base + "/out", req);
  CHECK(read_lines(base + "/404.log").size() == 4u);
  CHECK(read_lines(base + "/good.log").size() == 4u);
  // Forced: downloaded again.
  req.force = true;
  fetch_files(info, base + "/out", req);
  CHECK(read_lines(base + "/good.log").size() == 8u);
  check_all_verified(info, base + "/out");
}

TEST_CASE("fetch over HTTP refuses wrong bytes / truncation / a stall / a flood / HTTP 503") {
  require_python();
  OfflineEnv env;
  std::string base = scratch_dir("fetch_bad");
  DatasetInfo info = tiny_dataset(base + "/upstream");
  FetchRequest req;

  struct Case {
    const char* mode;
    const char* expect;
  };
  for (Case c : {Case{"wrong", "checksum mismatch (got sha256 "},
                 Case{"truncate", "truncated after "},
                 Case{"stall", "timeout (Operation too slow"},
                 Case{"flood", "sent more than the "},
                 Case{"flaky", "HTTP 503"}}) {
    INFO("mode " << c.mode);
    LoopbackServer s(c.mode, base + "/upstream");
    req.mirrors = {s.url()};
    std::string out = base + "/out-" + c.mode;
    auto t0 = std::chrono::steady_clock::now();
    std::string err = fetch_error(info, out, req);
    double secs = seconds_since(t0);
    INFO("error: " << err);
    WARN(c.mode << ": refused in " << secs << " s: " << err);
    CHECK(err.find("tiny: could not fetch train-images-idx3-ubyte.gz from any of 1 mirror(s): " +
                   s.url() + "train-images-idx3-ubyte.gz: ") == 0);
    CHECK(err.find(c.expect) != std::string::npos);
    CHECK(secs < 10.0);  // the 1 s stall limit, not the 30 s default (slack for a loaded machine)
    CHECK(listing(out).empty());  // the temporary file was removed, nothing renamed in
    CHECK_FALSE(fs::exists(out));  // and the folder this fetch created for it is gone too
  }
}

TEST_CASE("fetch retries transient failures a bounded number of times") {
  require_python();
  OfflineEnv env;
  EnvGuard retries("MNISTCTL_FETCH_RETRIES", "1");
  std::string base = scratch_dir("fetch_retry");
  DatasetInfo info = tiny_dataset(base + "/upstream");
  {
    // 503 on each file's first request, then the file: one retry each is enough.
    LoopbackServer flaky("flaky", base + "/upstream", base + "/flaky.log");
    FetchRequest req;
    req.mirrors = {flaky.url()};
    fetch_files(info, base + "/out", req);
    check_all_verified(info, base + "/out");
    CHECK(read_lines(base + "/flaky.log").size() == 8u);
  }
  {
    // A cut connection is retried, then given up on; 404 is not retried.
    LoopbackServer cut("truncate", base + "/upstream", base + "/cut.log");
    LoopbackServer missing("404", base + "/upstream", base + "/404.log");
    FetchRequest req;
    req.mirrors = {missing.url(), cut.url()};
    std::string err = fetch_error(info, base + "/out2", req);
    INFO(err);
    CHECK(err.find("(2 attempts)") != std::string::npos);
    CHECK(read_lines(base + "/cut.log").size() == 2u);
    CHECK(read_lines(base + "/404.log").size() == 1u);
  }
}

TEST_CASE("fetch failing on every mirror lists every URL and why") {
  require_python();
  OfflineEnv env;
  std::string base = scratch_dir("fetch_allfail");
  DatasetInfo info = tiny_dataset(base + "/upstream");
  LoopbackServer missing("404", base + "/upstream");
  LoopbackServer wrong("wrong", base + "/upstream");
  // A port with nothing listening: take a free one from a server, then stop it.
  std::string closed;
  {
    LoopbackServer gone("404", base + "/upstream");
    closed = gone.url();
  }
  FetchRequest req;
  req.mirrors = {missing.url(), wrong.url(), closed, "file://" + base + "/nowhere", base + "/nowhere2"};
  std::string err = fetch_error(info, base + "/out", req);
  INFO(err);
  const std::string n = "/train-images-idx3-ubyte.gz";
  CHECK(err.find("from any of 5 mirror(s)") != std::string::npos);
  CHECK(err.find(missing.url() + n.substr(1) + ": HTTP 404") != std::string::npos);
  CHECK(err.find(wrong.url() + n.substr(1) + ": checksum mismatch") != std::string::npos);
  CHECK(err.find(closed + n.substr(1) + ": cannot connect") != std::string::npos);
  CHECK(err.find(base + "/nowhere: folder not found") != std::string::npos);
  CHECK(err.find(base + "/nowhere2: folder not found") != std::string::npos);
  CHECK(err.find('\n') == std::string::npos);  // one line
  CHECK(err.find("offline?") == std::string::npos);  // no built-in mirror was tried
  CHECK(listing(base + "/out").empty());
}

TEST_CASE("fetch the real MNIST over loopback and load it") {
  std::string src = mnist_dir();
  if (src.empty()) missing_test_data("real MNIST not found (../shared/datasets/mnist or $MNISTCTL_TEST_MNIST)");
  require_python();
  OfflineEnv env;
  std::string root = scratch_dir("fetch_mnist");
  LoopbackServer s("serve", src);
  FetchRequest req;
  req.dataset = "mnist";
  req.data_root = root;
  req.mirrors = {s.url()};
  auto t0 = std::chrono::steady_clock::now();
  std::string dir = fetch_dataset(req);
  WARN("fetched MNIST (11.6 MB) over loopback in " << seconds_since(t0) << " s");
  CHECK(dir == root + "/mnist");
  check_all_verified(find_dataset("mnist"), dir);
  Dataset test = load_split(root, "mnist", Split::test);
  CHECK(test.count == 10000);
  CHECK(test.labels[0] == 7);
}

TEST_CASE("fetch Fashion-MNIST from the Debian-installed copy (a local mirror)") {
  const std::string deb = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(deb + "/t10k-labels-idx1-ubyte.gz"))
    missing_test_data(deb + " not installed (Debian package dataset-fashion-mnist, scripts/setup.sh)");
  OfflineEnv env;
  std::string root = scratch_dir("fetch_fashion");
  FetchRequest req;
  req.dataset = "fashion-mnist";
  req.data_root = root;
  req.mirrors = {deb};
  std::string dir = fetch_dataset(req);
  CHECK(dir == root + "/fashion-mnist");
  Dataset test = load_split(root, "fashion-mnist", Split::test);
  CHECK(test.count == 10000);
  std::vector<int> per(10, 0);
  for (uint8_t l : test.labels) per[l]++;
  CHECK(per == std::vector<int>(10, 1000));  // Fashion-MNIST is balanced
  CHECK(read_idx_labels(dir + "/train-labels-idx1-ubyte.gz").size() == 60000u);
}

TEST_CASE("fetch refuses an unsupported mirror scheme before trying anything") {
  OfflineEnv env;
  std::string base = scratch_dir("fetch_scheme");
  DatasetInfo info = tiny_dataset(base + "/upstream");
  auto usage_error = [&](const FetchRequest& req, const std::string& out) {
    try {
      fetch_files(info, out, req);
    } catch (const Error& e) {
      CHECK(e.code() == kExitUsage);
      return std::string(e.what());
    }
    FAIL("no error");
    return std::string();
  };
  FetchRequest req;
  // A good mirror first: if anything were tried before the check, it would be fetched.
  req.mirrors = {base + "/upstream", "ftp://example.org/mnist/"};
  std::string err = usage_error(req, base + "/out");
  INFO(err);
  CHECK(err.find("--mirror 'ftp://example.org/mnist/': unsupported scheme 'ftp://'") == 0);
  CHECK(err.find("http:// or https://") != std::string::npos);
  CHECK(err.find("file://") != std::string::npos);
  CHECK(err.find("folder path") != std::string::npos);
  CHECK_FALSE(fs::exists(base + "/out"));  // not even the folder

  // From $MNISTCTL_MIRROR, named as such; scheme case does not matter for http.
  {
    EnvGuard m("MNISTCTL_MIRROR", "S3://bucket/mnist");
    req.mirrors = {base + "/upstream"};
    err = usage_error(req, base + "/out");
    CHECK(err.find("$MNISTCTL_MIRROR entry 'S3://bucket/mnist': unsupported scheme 's3://'") == 0);
    CHECK_FALSE(fs::exists(base + "/out"));
  }
  req.mirrors = {"file://relative/dir"};
  CHECK(usage_error(req, base + "/out").find("needs an absolute path") != std::string::npos);
  CHECK_FALSE(fs::exists(base + "/out"));

  // Not a scheme: a folder whose name merely contains "://" is a folder.
  fs::create_directories(base + "/odd/a://b");
  for (const DataFile* f : info.files()) fs::copy_file(base + "/upstream/" + f->name, base + "/odd/a://b/" + f->name);
  req.mirrors = {base + "/odd/a://b"};
  fetch_files(info, base + "/out", req);
  check_all_verified(info, base + "/out");
}

TEST_CASE("fetch errors are one line with each source once and nothing echoed on stderr") {
  OfflineEnv env;
  std::string base = scratch_dir("fetch_oneline");
  DatasetInfo info = tiny_dataset(base + "/upstream");
  const std::string closed = closed_port_url();
  const std::string out = base + "/root/tiny";

  // Two broken mirrors (the reproduction from the trial: a dead port and a missing folder).
  FetchRequest req;
  req.mirrors = {closed, base + "/nonexistent"};
  std::string err, logged;
  {
    StderrCapture cap(base + "/stderr.txt");
    err = fetch_error(info, out, req);
    logged = cap.text();
  }
  INFO("error: " << err << "\nstderr: " << logged);
  const std::string n = "train-images-idx3-ubyte.gz";
  CHECK(err.find("tiny: could not fetch " + n + " from any of 2 mirror(s): " + closed + n +
                 ": cannot connect (") == 0);
  const std::string tail = "; " + base + "/nonexistent: folder not found";
  REQUIRE(err.size() > tail.size());
  CHECK(err.compare(err.size() - tail.size(), tail.size(), tail) == 0);
  CHECK(occurrences(err, closed) == 1);
  CHECK(occurrences(err, base + "/nonexistent") == 1);
  CHECK(err.find(base + "/nonexistent/" + n) == std::string::npos);  // the folder, not the file
  CHECK(err.find('\n') == std::string::npos);
  // Nothing on stderr repeats what the error says.
  CHECK(logged.find(closed) == std::string::npos);
  CHECK(logged.find("nonexistent") == std::string::npos);
  // The folders the failed fetch created (root/ and root/tiny/) are gone; nothing else.
  CHECK_FALSE(fs::exists(base + "/root"));
  CHECK(fs::exists(base + "/upstream"));

  // A folder that existed before stays, even when empty.
  fs::create_directories(out);
  fetch_error(info, out, req);
  CHECK(fs::is_directory(out));

  // A mirror folder that exists but lacks the file: the file is named.
  fs::create_directories(base + "/partial");
  req.mirrors = {base + "/partial"};
  err = fetch_error(info, out, req);
  CHECK(err.find(base + "/partial/" + n + ": not found") != std::string::npos);
  // A mirror "folder" that is a file.
  req.mirrors = {base + "/upstream/" + n};
  err = fetch_error(info, out, req);
  CHECK(err.find(base + "/upstream/" + n + ": not a folder") != std::string::npos);

  // A broken mirror before a good one: the failure is reported once per file on stderr, as
  // the file then comes from the next mirror.
  req.mirrors = {base + "/nonexistent", base + "/upstream"};
  {
    StderrCapture cap(base + "/stderr2.txt");
    fetch_files(info, out, req);
    logged = cap.text();
  }
  INFO("stderr: " << logged);
  check_all_verified(info, out);
  for (const DataFile* f : info.files())
    CHECK(occurrences(logged, f->name + ": " + base + "/nonexistent: folder not found") == 1);
}

TEST_CASE("fetch ends with an offline hint when the built-in internet mirrors failed too") {
  OfflineEnv env;
  std::string base = scratch_dir("fetch_offline");
  DatasetInfo info = tiny_dataset(base + "/upstream");
  // The made-up dataset's "download site" is a dead local port: fails at once, like an
  // offline machine, without leaving the loopback interface.
  info.mirrors = {closed_port_url()};
  FetchRequest req;
  req.mirrors = {base + "/nonexistent"};
  {
    EnvGuard builtin("MNISTCTL_NO_BUILTIN_MIRRORS", std::nullopt);
    std::string err = fetch_error(info, base + "/out", req);
    INFO(err);
    CHECK(err.find("from any of 2 mirror(s)") != std::string::npos);
    CHECK(err.find(info.mirrors[0] + "train-images-idx3-ubyte.gz: cannot connect") != std::string::npos);
    REQUIRE(err.size() > kOfflineHint.size());
    CHECK(err.compare(err.size() - kOfflineHint.size(), kOfflineHint.size(), kOfflineHint) == 0);
  }
  // Only the user's own mirrors failed (the built-in ones switched off, as here): no hint.
  req.mirrors = {closed_port_url(), base + "/nonexistent"};
  std::string err = fetch_error(info, base + "/out", req);
  INFO(err);
  CHECK(err.find("cannot connect") != std::string::npos);
  CHECK(err.find("offline?") == std::string::npos);
}

TEST_CASE("fetch removes temporaries of killed fetches and keeps those of live processes") {
  OfflineEnv env;
  std::string base = scratch_dir("fetch_stale");
  DatasetInfo info = tiny_dataset(base + "/upstream");
  const std::string out = base + "/out";
  fs::create_directories(out);
  // A pid that is certainly gone: a child that has exited and been reaped.
  pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  int st;
  REQUIRE(::waitpid(dead, &st, 0) == dead);
  const pid_t live = ::getppid();  // whoever started this test: alive while it runs
  const std::string n = info.train_images.name, m = info.test_labels.name;
  const std::vector<std::string> stale = {n + ".part." + std::to_string(dead),
                                          m + ".part." + std::to_string(dead)};
  const std::vector<std::string> kept = {n + ".part." + std::to_string(live),  // a live fetch's
                                         n + ".part.abc",                      // not a pid
                                         "notes.txt.part." + std::to_string(dead)};  // not ours
  for (const auto& f : stale) write_bytes(out + "/" + f, Bytes(100, 1));
  for (const auto& f : kept) write_bytes(out + "/" + f, Bytes(100, 1));

  FetchRequest req;
  req.mirrors = {base + "/upstream"};
  fetch_files(info, out, req);
  for (const auto& f : stale) {
    INFO(f);
    CHECK_FALSE(fs::exists(out + "/" + f));
  }
  for (const auto& f : kept) {
    INFO(f);
    CHECK(fs::exists(out + "/" + f));
  }
  for (const DataFile* f : info.files()) CHECK(sha256_file(out + "/" + f->name) == f->sha256);
  CHECK(listing(out).size() == 4u + kept.size());

  // Also when every file is already there (nothing to fetch) and when the fetch fails.
  write_bytes(out + "/" + stale[0], Bytes(10, 2));
  fetch_files(info, out, req);
  CHECK_FALSE(fs::exists(out + "/" + stale[0]));
  write_bytes(out + "/" + stale[0], Bytes(10, 2));
  req.force = true;
  req.mirrors = {base + "/nonexistent"};
  fetch_error(info, out, req);
  CHECK_FALSE(fs::exists(out + "/" + stale[0]));
}
