#include "train/checkpoint.h"

#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"

namespace mnistctl {
namespace {

enum : uint32_t { kText = 1, kTensor = 2 };
constexpr uint32_t kMaxName = 4096;
constexpr uint32_t kMaxRank = 8;

// Little-endian writers/readers (x86 and Arm Linux are little-endian; memcpy keeps it
// alignment-safe).
template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_name(std::string& out, uint32_t kind, const std::string& name) {
  put<uint32_t>(out, kind);
  put<uint32_t>(out, static_cast<uint32_t>(name.size()));
  out += name;
}

class Reader {
 public:
  Reader(const std::vector<uint8_t>& d, size_t end, const std::string& path)
      : d_(d), end_(end), path_(path) {}
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, d_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string bytes(size_t n, const char* what) {
    need(n, what);
    std::string s(reinterpret_cast<const char*>(d_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void floats(std::vector<float>& out, size_t n, const char* what) {
    if (n > (end_ - pos_) / 4) fail(fmt::format("truncated {}", what));
    out.resize(n);
    std::memcpy(out.data(), d_.data() + pos_, n * 4);
    pos_ += n * 4;
  }
  size_t pos() const { return pos_; }
  void seek(size_t p) { pos_ = p; }
  [[noreturn]] void fail(const std::string& msg) const {
    throw UsageError(fmt::format("{}: corrupt checkpoint: {} (at byte {})", path_, msg, pos_));
  }

 private:
  void need(size_t n, const char* what) {
    if (n > end_ - pos_) fail(fmt::format("truncated {}", what));
  }
  const std::vector<uint8_t>& d_;
  size_t end_;
  size_t pos_ = 0;
  const std::string& path_;
};

std::string meta_text(const std::map<std::string, std::string>& meta) {
  std::string s;
  for (const auto& [k, v] : meta) s += k + "=" + v + "\n";
  return s;
}

}  // namespace

const NamedTensor* Checkpoint::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

int64_t Checkpoint::meta_int(const std::string& key, const std::string& source) const {
  auto it = meta.find(key);
  if (it == meta.end()) throw UsageError(fmt::format("{}: checkpoint has no '{}'", source, key));
  try {
    size_t used = 0;
    long long v = std::stoll(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    throw UsageError(fmt::format("{}: checkpoint field '{}' is not an integer: '{}'", source, key,
                                 it->second));
  }
}

int64_t Checkpoint::meta_int_or(const std::string& key, const std::string& source, int64_t def) const {
  return meta.count(key) ? meta_int(key, source) : def;
}

double Checkpoint::meta_double_or(const std::string& key, const std::string& source, double def) const {
  auto it = meta.find(key);
  if (it == meta.end()) return def;
  const char* text = it->second.c_str();
  char* end = nullptr;
  double v = std::strtod(text, &end);  // also reads "inf" and "-inf"
  if (it->second.empty() || end != text + it->second.size() || std::isnan(v))
    throw UsageError(fmt::format("{}: checkpoint field '{}' is not a number: '{}'", source, key, it->second));
  return v;
}

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  write_file_atomic(path, serialize_checkpoint(c));
}

std::string serialize_checkpoint(const Checkpoint& c) {
  std::string out(kCheckpointMagic, sizeof kCheckpointMagic);
  put<uint32_t>(out, Checkpoint::kVersion);
  put<uint32_t>(out, static_cast<uint32_t>(2 + c.tensors.size()));
  for (const auto& [name, text] : {std::pair<std::string, std::string>{"config", c.config_yaml},
                                   {"meta", meta_text(c.meta)}}) {
    put_name(out, kText, name);
    put<uint64_t>(out, text.size());
    out += text;
  }
  for (const auto& t : c.tensors) {
    put_name(out, kTensor, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.shape.rank()));
    for (int64_t d : t.shape.dims) put<int64_t>(out, d);
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * 4);
  }
  uint32_t crc = static_cast<uint32_t>(crc32_z(0L, reinterpret_cast<const Bytef*>(out.data()), out.size()));
  put<uint32_t>(out, crc);
  return out;
}

Checkpoint load_checkpoint(const std::string& path) {
  std::vector<uint8_t> d = read_file(path);
  const size_t header = sizeof kCheckpointMagic + 8;
  if (d.size() < header + 4 || std::memcmp(d.data(), kCheckpointMagic, sizeof kCheckpointMagic) != 0)
    throw UsageError(fmt::format("{}: not an mnistctl checkpoint (no MNISTCKP header)", path));
  size_t body = d.size() - 4;
  Reader r(d, body, path);
  r.seek(sizeof kCheckpointMagic);
  uint32_t version = r.get<uint32_t>("version");
  if (version != Checkpoint::kVersion)
    throw UsageError(fmt::format("{}: checkpoint format version {} is not supported (this mnistctl "
                                 "reads version {})",
                                 path, version, Checkpoint::kVersion));
  uint32_t stored_crc;
  std::memcpy(&stored_crc, d.data() + body, 4);
  uint32_t crc = static_cast<uint32_t>(crc32_z(0L, d.data(), body));
  if (crc != stored_crc)
    throw UsageError(fmt::format("{}: checkpoint checksum mismatch (stored {:08x}, computed {:08x}): "
                                 "the file is damaged or truncated",
                                 path, stored_crc, crc));
  uint32_t count = r.get<uint32_t>("record count");
  Checkpoint c;
  bool have_config = false, have_meta = false;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t kind = r.get<uint32_t>("record kind");
    uint32_t name_len = r.get<uint32_t>("record name length");
    if (name_len == 0 || name_len > kMaxName) r.fail(fmt::format("record name length {}", name_len));
    std::string name = r.bytes(name_len, "record name");
    if (kind == kText) {
      uint64_t len = r.get<uint64_t>("text length");
      if (len > body) r.fail(fmt::format("text record '{}' claims {} bytes", name, len));
      std::string text = r.bytes(static_cast<size_t>(len), "text record");
      if (name == "config") {
        c.config_yaml = std::move(text);
        have_config = true;
      } else if (name == "meta") {
        std::istringstream in(text);
        std::string line;
        while (std::getline(in, line)) {
          auto eq = line.find('=');
          if (eq == std::string::npos) r.fail(fmt::format("meta line without '=': '{}'", line));
          c.meta[line.substr(0, eq)] = line.substr(eq + 1);
        }
        have_meta = true;
      }
    } else if (kind == kTensor) {
      NamedTensor t;
      t.name = name;
      uint32_t rank = r.get<uint32_t>("tensor rank");
      if (rank > kMaxRank) r.fail(fmt::format("tensor '{}' has rank {}", name, rank));
      uint64_t numel = 1;
      for (uint32_t k = 0; k < rank; ++k) {
        int64_t dim = r.get<int64_t>("tensor dims");
        if (dim <= 0 || static_cast<uint64_t>(dim) > body) r.fail(fmt::format("tensor '{}' has extent {}", name, dim));
        numel *= static_cast<uint64_t>(dim);
        if (numel > body) r.fail(fmt::format("tensor '{}' is larger than the file", name));
        t.shape.dims.push_back(dim);
      }
      r.floats(t.data, static_cast<size_t>(numel), "tensor data");
      // Training never saves a NaN or Inf (a diverged loss stops the run first): one here is
      // damage, and would flow silently into predictions.
      for (size_t k = 0; k < t.data.size(); ++k)
        if (!std::isfinite(t.data[k]))
          r.fail(fmt::format("tensor '{}' holds a non-finite value ({}) at element {}", name, t.data[k], k));
      c.tensors.push_back(std::move(t));
    } else {
      r.fail(fmt::format("unknown record kind {}", kind));
    }
  }
  if (r.pos() != body) r.fail("trailing bytes after the last record");
  if (!have_config || !have_meta) r.fail("missing the config or meta record");
  // The run's position and counts: whole numbers, never negative (a resumed run counts on them).
  for (const char* key : {"epoch", "batch", "step", "best_epoch", "train_samples", "batch_size"}) {
    if (!c.meta.count(key)) continue;
    const int64_t v = c.meta_int(key, path);
    const int64_t least = std::string(key) == "batch_size" ? 1 : 0;
    if (v < least)
      throw UsageError(fmt::format("{}: corrupt checkpoint: meta field '{}' is {}, expected {} or more", path, key, v,
                                   least));
  }
  return c;
}

}  // namespace mnistctl
