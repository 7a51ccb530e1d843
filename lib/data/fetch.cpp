// The verified downloader (see fetch.h).
#include "data/fetch.h"

#include <fcntl.h>
#include <signal.h>
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

#include "core/closest.h"
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

// One mirror, parsed and checked before anything is tried.
struct Mirror {
  std::string spec;   // as given
  bool remote = false;
  std::string base;   // the base URL (remote) or the folder (local)
  bool builtin_remote = false;  // one of the dataset's own download sites
};

// http(s):// -> remote; file:///abs or a plain path -> a local folder; any other scheme
// (ftp://, s3://, a typo) is a usage error up front, so nothing is half-tried with it.
// `origin` names where the mirror came from, for the message.
Mirror parse_mirror(const std::string& m, const std::string& origin) {
  Mirror out;
  out.spec = m;
  const size_t sep = m.find("://");
  bool has_scheme = sep != std::string::npos && sep > 0 && std::isalpha(static_cast<unsigned char>(m[0]));
  for (size_t i = 0; has_scheme && i < sep; ++i) {
    const unsigned char c = static_cast<unsigned char>(m[i]);
    has_scheme = std::isalnum(c) || c == '+' || c == '-' || c == '.';
  }
  if (!has_scheme) {  // a plain folder path (even one with "://" inside a folder name)
    out.base = m;
    return out;
  }
  const std::string scheme = ascii_lower(m.substr(0, sep));
  if (scheme == "http" || scheme == "https") {
    out.remote = true;
    out.base = m;
    return out;
  }
  if (scheme == "file") {
    std::string rest = m.substr(sep + 3);
    if (rest.rfind("localhost/", 0) == 0) rest = rest.substr(9);
    if (rest.empty() || rest[0] != '/')
      throw UsageError(fmt::format("{} '{}': a file:// URL needs an absolute path "
                                   "(file:///path/to/folder)", origin, m));
    out.base = rest;
    return out;
  }
  throw UsageError(fmt::format(
      "{} '{}': unsupported scheme '{}://' (a mirror is an http:// or https:// URL, a "
      "file:///path/to/folder URL or a folder path)", origin, m, scheme));
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
    int closed = ::close(fd_);
    fd_ = -1;
    if (closed != 0) throw RuntimeError(fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
    if (::rename(path_.c_str(), dest_.c_str()) != 0)
      throw RuntimeError(fmt::format("{}: cannot rename into place: {}", dest_, std::strerror(errno)));
    committed_ = true;
    sync_folder_of(dest_);
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

// The common end of an attempt that received the whole body: it counts only if the bytes
// are one of the file's accepted forms (checksum and size).
Attempt verify_received(const DataFile& f, Receiver& rx, Attempt a) {
  std::string sha = rx.hash.hex();
  if (!f.accepts(sha, rx.bytes)) {
    a.why = checksum_failure(f, sha, rx.bytes);
    return a;
  }
  a.ok = true;
  a.bytes = rx.bytes;
  return a;
}

// What a local attempt names in messages: the folder itself when the folder is the problem
// (so "--mirror /typo" reads "folder not found", not a missing file), else the file.
std::string local_source(const std::string& folder, const std::string& name) {
  std::error_code ec;
  return fs::is_directory(folder, ec) ? join_url(folder, name) : folder;
}

Attempt copy_local(const DataFile& f, const std::string& folder, TempFile& tmp, int64_t cap,
                   Progress& bar) {
  Attempt a;
  std::error_code ec;
  if (!fs::exists(folder, ec)) {
    a.why = "folder not found";
    return a;
  }
  if (!fs::is_directory(folder, ec)) {
    a.why = "not a folder";
    return a;
  }
  const std::string src = join_url(folder, f.name);
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
  return verify_received(f, rx, a);
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
  return verify_received(f, rx, a);
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

namespace {

// The mirrors to try, parsed; an unusable one is a UsageError before anything is tried.
std::vector<Mirror> parse_mirrors(const DatasetInfo& info, const std::vector<std::string>& first) {
  std::vector<std::string> from_env;
  if (const char* env = std::getenv("MNISTCTL_MIRROR")) split_into(env, from_env);
  std::vector<Mirror> out;
  for (const auto& m : mirror_list(info, first)) {
    const bool given = std::find(first.begin(), first.end(), m) != first.end();
    const bool env = std::find(from_env.begin(), from_env.end(), m) != from_env.end();
    Mirror mm = parse_mirror(m, given ? "--mirror" : env ? "$MNISTCTL_MIRROR entry" : "built-in mirror");
    mm.builtin_remote = mm.remote && std::find(info.mirrors.begin(), info.mirrors.end(), m) != info.mirrors.end();
    out.push_back(mm);
  }
  return out;
}

// The folders that creating `dir` will add, deepest first (so that a failed fetch can take
// back exactly what it created, and nothing that was there before).
std::vector<fs::path> folders_to_create(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::path p = d; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    out.push_back(p);
    if (p == p.parent_path()) break;
  }
  return out;
}

// Removes the folders a failed fetch created, while they are empty (a concurrent fetch that
// put a file there keeps its folder: removing a non-empty folder fails harmlessly).
void remove_created_folders(const std::vector<fs::path>& created) {
  for (const auto& p : created) {
    std::error_code ec;
    if (!fs::is_directory(p, ec) || !fs::is_empty(p, ec) || !fs::remove(p, ec)) break;
  }
}

// Temporary files "<name>.part.<pid>" left by a fetch that was killed, and "<name>.tmp.<pid>"
// of an atomic write into the folder: removed when that process no longer exists. A live pid
// (another fetch, or an unrelated process that reused the number) keeps its file; that only
// costs disk space until the next run.
void remove_stale_parts(const DatasetInfo& info, const std::string& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    for (const DataFile* f : info.files()) {
      for (const char* suffix : {".part.", ".tmp."}) {
        const std::string prefix = f->name + suffix;
        if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string digits = name.substr(prefix.size());
        if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
        const long pid = std::stol(digits);
        if (pid <= 0 || pid == ::getpid()) continue;
        if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to signal)
        std::error_code rec;
        if (fs::remove(it->path(), rec))
          log_line(fmt::format("{}: removed, left by an interrupted fetch (process {} is gone)",
                               it->path().string(), pid));
      }
    }
  }
}

// Fetches every file not already present and verified; throws on the first file that no
// mirror has (later files would fail the same way, and waiting on them helps nobody).
void fetch_all(const DatasetInfo& info, const std::string& dir, const FetchRequest& req,
               const std::vector<Mirror>& mirrors) {
  HttpOptions hopt;
  hopt.connect_timeout_s = env_long("MNISTCTL_FETCH_CONNECT_SECONDS", 20, 1, 3600);
  hopt.stall_timeout_s = env_long("MNISTCTL_FETCH_STALL_SECONDS", 30, 1, 3600);
  const int retries = static_cast<int>(env_long("MNISTCTL_FETCH_RETRIES", 2, 0, 10));

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
    // "<source>: <why>" per mirror that failed, each once. Printed only if a later mirror
    // then works; when none does, they make up the one-line error instead (not both).
    std::vector<std::string> tried;
    bool done = false, builtin_tried = false;
    for (const Mirror& m : mirrors) {
      const std::string src = m.remote ? join_url(m.base, f.name) : local_source(m.base, f.name);
      builtin_tried = builtin_tried || m.builtin_remote;
      for (int attempt = 0;; ++attempt) {
        tmp.reset();
        Progress bar(f.name, f.bytes);
        Attempt a = m.remote ? download(f, src, tmp, cap, hopt, bar) : copy_local(f, m.base, tmp, cap, bar);
        if (a.ok) {
          tmp.commit();
          for (const auto& t : tried) log_line(fmt::format("{}: {}", f.name, t));
          bar.done(fmt::format("{} from {} ({}, verified)", m.remote ? "downloaded" : "copied", src,
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
        tried.push_back(fmt::format("{}: {}", src, why));
        break;
      }
      if (done) break;
    }
    if (!done) {
      std::string list;
      for (const auto& t : tried) list += (list.empty() ? "" : "; ") + t;
      throw RuntimeError(fmt::format(
          "{}: could not fetch {} from any of {} mirror(s): {}{}", info.name, f.name, tried.size(),
          list,
          builtin_tried ? " (offline? pass --mirror DIR or set MNISTCTL_MIRROR to a folder "
                          "holding the .gz files)"
                        : ""));
    }
  }
}

}  // namespace

std::string fetch_files(const DatasetInfo& info, const std::string& dir, const FetchRequest& req) {
  const std::vector<Mirror> mirrors = parse_mirrors(info, req.mirrors);
  const std::vector<fs::path> created = folders_to_create(dir);
  make_dirs(dir);
  try {
    remove_stale_parts(info, dir);
    fetch_all(info, dir, req, mirrors);
  } catch (...) {
    // The temporary file is gone by now (unwound); take back the folders made for nothing.
    remove_created_folders(created);
    throw;
  }
  return dir;
}

std::string fetch_dataset(const FetchRequest& req) {
  const DatasetInfo& info = find_dataset(req.dataset);
  std::string dir = dataset_dir(req.data_root, req.dataset);
  return fetch_files(info, dir, req);
}

}  // namespace mnistctl
