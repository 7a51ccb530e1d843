// One YAML mapping of a config file (a layer, or a section), with where it came from, and
// typed getters that validate as they read. Every error is one line:
//   "<file>:<line>:<col>: <what>: <what was expected>"
// Layers read their fields only through this class, so they never see yaml-cpp.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mnistctl {

struct SpecNodeImpl;  // holds the YAML node and the file name (spec_node.cpp)

class SpecNode {
 public:
  SpecNode();
  explicit SpecNode(std::shared_ptr<const SpecNodeImpl> impl);

  bool has(const std::string& key) const;
  // Optional fields with a default; required ones throw when missing. Ranges are inclusive.
  int64_t get_int(const std::string& key, int64_t def, int64_t min, int64_t max) const;
  int64_t require_int(const std::string& key, int64_t min, int64_t max) const;
  double get_double(const std::string& key, double def, double min, double max) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_string(const std::string& key, const std::string& def) const;
  std::string get_enum(const std::string& key, const std::string& def,
                       const std::vector<std::string>& allowed) const;
  // A scalar 5 means {5, 5}; a list [5, 3] means {5, 3}.
  std::array<int64_t, 2> get_pair(const std::string& key, std::array<int64_t, 2> def, int64_t min,
                                  int64_t max) const;
  std::array<int64_t, 2> require_pair(const std::string& key, int64_t min, int64_t max) const;

  // Throws UsageError for the first key not in `known`, with a "did you mean" suggestion.
  // A layer's node always accepts `type` and `name`: a factory lists only its own fields.
  void check_keys(const std::vector<std::string>& known) const;
  // "file:line:col" of the key's value (or of the mapping itself when key is empty).
  std::string location(const std::string& key = "") const;
  // Throws UsageError "<location(key)>: <message>".
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

 private:
  std::shared_ptr<const SpecNodeImpl> impl_;
};

}  // namespace mnistctl
