// What a SpecNode holds, and the checks behind its getters. Private to lib/config: the
// loader (config.cpp) uses these directly for its sections (it needs a few things the
// public getters don't offer: open ranges, lists, key-position errors, "moved key" hints).
//
// Every message has the same shape so that users learn to read one format:
//   "<where>: <label>: <what was expected>, got <what was found>"
// where <where> is "file:line:col" of the offending value (or key), or the --set text it
// came from, and <label> is "train.lr_schedule.min_lr" for a section field or
// "layer 'fc1' (fully_connected): num_hidden" for a layer field.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/spec_node.h"
#include "config/yaml_tree.h"

namespace mnistctl {

struct SpecNodeImpl {
  yaml::NodePtr node;   // a mapping, a Null (empty section) or nullptr (absent section)
  std::string source;   // the file name that positions refer to
  std::string self;     // where the mapping is (for absent sections: where it would go)
  std::string what;     // "train.lr_schedule", "layer 'fc1' (fully_connected)", "" at the top
  std::string sep = ".";                   // between `what` and a key in labels
  std::vector<std::string> implicit_keys;  // accepted by every check_keys (a layer's type, name)
};

namespace spec {

// A numeric range for checks and messages; open ends exclude the bound.
struct Range {
  double lo, hi;
  bool lo_open = false, hi_open = false;
};

// The value under key, or nullptr when the mapping has no such key.
const yaml::Node* value(const SpecNodeImpl& s, const std::string& key);
// "train.epochs", "layer 'fc1' (fully_connected): num_hidden", or `what` for an empty key.
std::string label(const SpecNodeImpl& s, const std::string& key);
// Where key's value is; the mapping itself when key is empty or absent.
std::string location(const SpecNodeImpl& s, const std::string& key);

// Throws UsageError "<where>: <label>: <message>" (no label part when it is empty).
[[noreturn]] void fail(const std::string& where, const std::string& label, const std::string& message);

// Value checks with an explicit label, also used for list elements ("kernel[1]").
int64_t to_int(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label, int64_t min,
               int64_t max);
double to_double(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label,
                 const Range& range);
bool to_bool(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label);
std::string to_string(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label);
std::string to_enum(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label,
                    const std::vector<std::string>& allowed);

// get_double with open or closed ends.
double get_double(const SpecNodeImpl& s, const std::string& key, double def, const Range& range);

// Fails at the first key of the mapping that is neither in `known` nor implicit. `moved`
// maps keys that belong elsewhere to a hint ("min_lr" -> "lr_schedule.min_lr").
void check_keys(const SpecNodeImpl& s, const std::vector<std::string>& known,
                const std::vector<std::pair<std::string, std::string>>& moved = {});

// The closest candidate by edit distance (case-insensitive, transpositions count 1) when
// it is close enough to be a likely typo; empty otherwise.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

// "an integer from 1 to 100", "a number > 0 and <= 10", ...
std::string int_range_text(int64_t min, int64_t max);
std::string range_text(const Range& r);

}  // namespace spec
}  // namespace mnistctl
