// Checkpoints: one self-describing file per save (docs/checkpoint.md has the byte layout).
//
//   "MNISTCKP" | u32 version | u32 record count | records... | u32 CRC-32 of all before it
//   record: u32 kind (1 text, 2 tensor) | u32 name length | name |
//           text: u64 length, bytes     tensor: u32 rank, i64 dims[rank], float32 data
//
// Records: "config" (the resolved YAML), "meta" (key=value lines: epoch, batch, step,
// seed, ...), "param/<name>", "optim/<name>:<slot>", "metrics/train". Little-endian.
// Loading checks the magic, version, CRC and every length before trusting it, then that
// every tensor value is finite and the run's position fields are not negative, and says
// which check failed. The same file serves every backend.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/shape.h"

namespace mnistctl {

// The first 8 bytes of every checkpoint file (no terminating NUL in the file).
inline constexpr char kCheckpointMagic[8] = {'M', 'N', 'I', 'S', 'T', 'C', 'K', 'P'};

struct NamedTensor {
  std::string name;
  Shape shape;
  std::vector<float> data;
};

struct Checkpoint {
  static constexpr uint32_t kVersion = 1;
  std::string config_yaml;
  std::map<std::string, std::string> meta;
  std::vector<NamedTensor> tensors;

  const NamedTensor* find(const std::string& name) const;
  // Throws UsageError naming `source` when the key is missing or not an integer.
  int64_t meta_int(const std::string& key, const std::string& source) const;
  // For keys that older checkpoints lack: `def` when missing, UsageError when malformed.
  int64_t meta_int_or(const std::string& key, const std::string& source, int64_t def) const;
  double meta_double_or(const std::string& key, const std::string& source, double def) const;
};

// The file's bytes (what save_checkpoint writes).
std::string serialize_checkpoint(const Checkpoint& ckpt);
// Serialises and writes atomically (temporary file, fsync, rename).
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);
// Throws UsageError naming the file and the failed check.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace mnistctl
