// The verified downloader (see fetch.h).
#include "data/fetch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "data/http.h"
#include "data/sha256.h"

namespace mnistctl {
namespace {

namespace fs = std::filesystem;

long env_long(const char* name, long def, long lo, long hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  if (errno || *end || x < lo || x > hi)
    throw UsageError(fmt::format("${}='{}': expected a whole number {}..{}", name, v, lo, hi));
  return x;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}

bool is_remote(const std::string& m) { return m.find("://") != std::string::npos && m.rfind("file://", 0) != 0; }

// file:///a/b, file://localhost/a/b or a plain path -> the folder path.
std::string local_path(const std::string& m) {
  if (m.rfind("file://", 0) != 0) return m;
  std::string rest = m.substr(7);
  if (rest.rfind("localhost/", 0) == 0) rest = rest.substr(9);
  if (rest.empty() || rest[0] != '/')
    throw UsageError(fmt::format("mirror '{}': a file:// URL needs an absolute path "
                                 "(file:///path/to/folder)", m));
  return rest;
}

std::string join_url(const std::string& base, const std::string& name) {
  return base + (base.empty() || base.back() == '/' ? "" : "/") + name;
}

// A temporary file beside the destination; removed unless committed.
class TempFile {
 public:
  explicit TempFile(const std::string& dest)
      : path_(fmt::format("{}.part.{}", dest, ::getpid())), dest_(dest) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw RuntimeError(fmt::format("{}: cannot create: {}", path_, std::strerror(errno)));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  // Empties the file for another attempt.
  void reset() {
    if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0)
      throw RuntimeError(fmt::format("{}: cannot truncate: {}", path_, std::strerror(errno)));
    write_error_.clear();
  }
  bool write(const uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        write_error_ = fmt::format("{}: write failed: {}", path_, std::strerror(errno));
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  const std::string& write_error() const { return write_error_; }
  void commit() {
    if (::fsync(fd_) != 0)
      throw RuntimeError(fmt::format("{}: fsync failed: {}", path_, std::strerror(errno)));
    ::close(fd_);
    fd_ = -1;
    if (::rename(path_.c_str(), dest_.c_str()) != 0)
      throw RuntimeError(fmt::format("{}: cannot rename into place: {}", dest_, std::strerror(errno)));
    committed_ = true;
  }

 private:
  std::string path_, dest_;
  int fd_ = -1;
  bool committed_ = false;
  std::string write_error_;
};

// What one attempt at one source produced.
struct Attempt {
  bool ok = false;
  bool transient = false;
  int64_t bytes = 0;
  std::string why;
};

std::string human_bytes(int64_t n) {
  if (n >= (1 << 20)) return fmt::format("{:.1f} MB", static_cast<double>(n) / 1e6);
  if (n >= 1000) return fmt::format("{:.1f} kB", static_cast<double>(n) / 1e3);
  return fmt::format("{} B", n);
}

// Streams data into the temp file while hashing and enforcing the cap.
struct Receiver {
  TempFile& tmp;
  int64_t cap;
  Sha256 hash;
  int64_t bytes = 0;
  std::string stop_reason;  // why the receiver refused more data

  Receiver(TempFile& t, int64_t c) : tmp(t), cap(c) {}
  bool take(const uint8_t* p, size_t n) {
    if (bytes + static_cast<int64_t>(n) > cap) {
      stop_reason = fmt::format("sent more than the {} bytes accepted", cap);
      return false;
    }
    if (!tmp.write(p, n)) {
      stop_reason = tmp.write_error();
      return false;
    }
    hash.update(p, n);
    bytes += static_cast<int64_t>(n);
    return true;
  }
};

std::string checksum_failure(const DataFile& f, const std::string& sha, int64_t bytes) {
  return fmt::format("checksum mismatch (got sha256 {}..., {} bytes; expected {}..., {} bytes)",
                     sha.substr(0, 12), bytes, f.sha256.substr(0, 12), f.bytes);
}

Attempt copy_local(const DataFile& f, const std::string& src, TempFile& tmp, int64_t cap,
                   Progress& bar) {
  Attempt a;
  std::error_code ec;
  if (!fs::exists(src, ec)) {
    a.why = "not found";
    return a;
  }
  if (!fs::is_regular_file(src, ec)) {
    a.why = "not a regular file";
    return a;
  }
  std::FILE* in = std::fopen(src.c_str(), "rb");
  if (!in) {
    a.why = fmt::format("cannot open: {}", std::strerror(errno));
    return a;
  }
  Receiver rx(tmp, cap);
  std::vector<uint8_t> buf(1 << 20);
  size_t n;
  bool ok = true;
  while ((n = std::fread(buf.data(), 1, buf.size(), in)) > 0) {
    if (!rx.take(buf.data(), n)) {
      ok = false;
      break;
    }
    bar.update(rx.bytes);
  }
  bool read_error = std::ferror(in) != 0;
  std::fclose(in);
  if (!tmp.write_error().empty()) throw RuntimeError(tmp.write_error());
  if (!ok) {
    a.why = rx.stop_reason;
    return a;
  }
  if (read_error) {
    a.why = "read failed";
    return a;
  }
  std::string sha = rx.hash.hex();
  if (!f.accepts(sha, rx.bytes)) {
    a.why = checksum_failure(f, sha, rx.bytes);
    return a;
  }
  a.ok = true;
  a.bytes = rx.bytes;
  return a;
}

Attempt download(const DataFile& f, const std::string& url, TempFile& tmp, int64_t cap,
                 const HttpOptions& hopt, Progress& bar) {
  Receiver rx(tmp, cap);
  HttpResult r = http_get(
      url, hopt, [&](const uint8_t* p, size_t n) { return rx.take(p, n); },
      [&](int64_t now, int64_t) { bar.update(now); });
  if (!tmp.write_error().empty()) throw RuntimeError(tmp.write_error());
  Attempt a;
  if (!r.ok) {
    a.why = rx.stop_reason.empty() ? r.error : rx.stop_reason;
    a.transient = r.transient && rx.stop_reason.empty();
    return a;
  }
  std::string sha = rx.hash.hex();
  if (!f.accepts(sha, rx.bytes)) {
    a.why = checksum_failure(f, sha, rx.bytes);
    return a;
  }
  a.ok = true;
  a.bytes = rx.bytes;
  return a;
}

void split_into(const std::string& s, std::vector<std::string>& out) {
  std::string cur;
  for (char c : s) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
}

}  // namespace

std::vector<std::string> mirror_list(const DatasetInfo& info, const std::vector<std::string>& first) {
  std::vector<std::string> all;
  for (const auto& m : first)
    if (!m.empty()) all.push_back(m);
  if (const char* env = std::getenv("MNISTCTL_MIRROR")) split_into(env, all);
  if (!env_flag("MNISTCTL_NO_BUILTIN_MIRRORS")) {
    // Local copies first: no network, and verified like any download.
    for (const auto& d : info.local_dirs) all.push_back(d);
    for (const auto& m : info.mirrors) all.push_back(m);
  }
  std::vector<std::string> out;
  for (const auto& m : all)
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  return out;
}

std::string fetch_files(const DatasetInfo& info, const std::string& dir, const FetchRequest& req) {
  HttpOptions hopt;
  hopt.connect_timeout_s = env_long("MNISTCTL_FETCH_CONNECT_SECONDS", 20, 1, 3600);
  hopt.stall_timeout_s = env_long("MNISTCTL_FETCH_STALL_SECONDS", 30, 1, 3600);
  const int retries = static_cast<int>(env_long("MNISTCTL_FETCH_RETRIES", 2, 0, 10));
  const std::vector<std::string> mirrors = mirror_list(info, req.mirrors);
  make_dirs(dir);

  for (const DataFile* fp : info.files()) {
    const DataFile& f = *fp;
    const std::string dest = dir + "/" + f.name;
    std::error_code ec;
    if (!req.force && fs::exists(dest, ec)) {
      std::string sha = sha256_file(dest);
      int64_t size = static_cast<int64_t>(fs::file_size(dest, ec));
      if (f.accepts(sha, size)) {
        log_line(fmt::format("{}: already present and verified", f.name));
        continue;
      }
      log_line(fmt::format("{}: present but {}: fetching again", f.name,
                           checksum_failure(f, sha, size)));
    }
    if (mirrors.empty())
      throw UsageError(fmt::format(
          "{}: no mirror to fetch it from: give --mirror URL or set $MNISTCTL_MIRROR "
          "(MNISTCTL_NO_BUILTIN_MIRRORS is set)", f.name));

    // Accept a little more than the largest known form, to refuse floods early.
    const int64_t cap = f.max_bytes() + std::max<int64_t>(64 * 1024, f.max_bytes() / 64);
    hopt.max_bytes = cap;
    TempFile tmp(dest);
    std::vector<std::string> tried;
    bool done = false;
    for (const auto& m : mirrors) {
      const bool remote = is_remote(m);
      const std::string src = remote ? join_url(m, f.name) : join_url(local_path(m), f.name);
      for (int attempt = 0;; ++attempt) {
        tmp.reset();
        Progress bar(f.name, f.bytes);
        Attempt a = remote ? download(f, src, tmp, cap, hopt, bar) : copy_local(f, src, tmp, cap, bar);
        if (a.ok) {
          tmp.commit();
          bar.done(fmt::format("{} from {} ({}, verified)", remote ? "downloaded" : "copied", src,
                              human_bytes(a.bytes)));
          done = true;
          break;
        }
        if (a.transient && attempt < retries) {
          log_line(fmt::format("{}: {}: {}; retrying ({} of {})", f.name, src, a.why, attempt + 1,
                               retries));
          std::this_thread::sleep_for(std::chrono::milliseconds(500 << attempt));
          continue;
        }
        std::string why = a.why;
        if (attempt > 0) why += fmt::format(" ({} attempts)", attempt + 1);
        log_line(fmt::format("{}: {}: {}", f.name, src, why));
        tried.push_back(fmt::format("{}: {}", src, why));
        break;
      }
      if (done) break;
    }
    if (!done) {
      std::string list;
      for (const auto& t : tried) list += (list.empty() ? "" : "; ") + t;
      throw RuntimeError(fmt::format("{}: could not fetch {} from any of {} mirror(s): {}",
                                     info.name, f.name, tried.size(), list));
    }
  }
  return dir;
}

std::string fetch_dataset(const FetchRequest& req) {
  const DatasetInfo& info = find_dataset(req.dataset);
  std::string dir = dataset_dir(req.data_root, req.dataset);
  return fetch_files(info, dir, req);
}

}  // namespace mnistctl
