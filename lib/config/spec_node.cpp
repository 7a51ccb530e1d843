// SpecNode: typed, validating reads of one config mapping (see spec_node.h), and the
// shared checks of spec_node_impl.h that the loader uses for its own sections.
//
// Scalars are read strictly, by YAML's own rules: a quoted "10" is a string, not a number;
// 2.5 is not an integer; integers are plain decimal (no 0x, no 1e3); numbers must be
// finite; booleans are true/false. Anything else is an error naming what was expected.
#include "config/spec_node.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "config/spec_node_impl.h"
#include "core/closest.h"
#include "core/error.h"

namespace mnistctl {
namespace spec {

namespace {

using yaml::describe;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool unbounded(double x) { return !std::isfinite(x) || std::fabs(x) >= 1e300; }

// Plain decimal integer with an optional sign; false if malformed, `overflow` if too big.
bool parse_int(const std::string& t, int64_t& out, bool& overflow) {
  overflow = false;
  const char* b = t.data();
  const char* e = b + t.size();
  if (b != e && *b == '+') ++b;
  if (b == e || (*b == '-' && b + 1 == e)) return false;
  auto r = std::from_chars(b, e, out);
  if (r.ptr != e) return false;
  if (r.ec == std::errc::result_out_of_range) overflow = true;
  return r.ec == std::errc() || overflow;
}

bool parse_double(const std::string& t, double& out) {
  const char* b = t.data();
  const char* e = b + t.size();
  if (b != e && *b == '+') ++b;
  if (b == e) return false;
  auto r = std::from_chars(b, e, out, std::chars_format::general);
  return r.ec == std::errc() && r.ptr == e && std::isfinite(out);
}

}  // namespace

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  return closest_match(word, candidates);
}

std::string int_range_text(int64_t min, int64_t max) {
  constexpr int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  if (min == lo && max == hi) return "an integer";
  if (max == hi) return fmt::format("an integer >= {}", min);
  if (min == lo) return fmt::format("an integer <= {}", max);
  return fmt::format("an integer from {} to {}", min, max);
}

std::string range_text(const Range& r) {
  std::string s = "a number";
  bool lo = !unbounded(r.lo), hi = !unbounded(r.hi);
  if (lo && hi && !r.lo_open && !r.hi_open) return fmt::format("a number from {} to {}", r.lo, r.hi);
  if (lo) s += fmt::format(" {} {}", r.lo_open ? ">" : ">=", r.lo);
  if (lo && hi) s += " and";
  if (hi) s += fmt::format(" {} {}", r.hi_open ? "<" : "<=", r.hi);
  return s;
}

const yaml::Node* value(const SpecNodeImpl& s, const std::string& key) {
  if (!s.node || !s.node->is_map() || key.empty()) return nullptr;
  return s.node->get(key);
}

std::string label(const SpecNodeImpl& s, const std::string& key) {
  if (key.empty()) return s.what;
  if (s.what.empty()) return key;
  return s.what + s.sep + key;
}

std::string location(const SpecNodeImpl& s, const std::string& key) {
  if (const yaml::Node* v = value(s, key)) return yaml::where(*v, s.source);
  if (s.node && !s.node->is_null()) return yaml::where(*s.node, s.source);
  return s.self;
}

void fail(const std::string& where, const std::string& label, const std::string& message) {
  if (label.empty()) throw UsageError(fmt::format("{}: {}", where, message));
  throw UsageError(fmt::format("{}: {}: {}", where, label, message));
}

int64_t to_int(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label, int64_t min,
               int64_t max) {
  int64_t x = 0;
  bool overflow = false;
  bool ok = v.is_scalar() && !v.quoted && parse_int(v.text, x, overflow);
  if (!ok || overflow || x < min || x > max)
    fail(yaml::where(v, s.source), label,
         fmt::format("expected {}, got {}{}", int_range_text(min, max), describe(v),
                     overflow ? " (too large)" : ""));
  return x;
}

double to_double(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label,
                 const Range& r) {
  double x = 0;
  bool ok = v.is_scalar() && !v.quoted && parse_double(v.text, x);
  if (ok) {
    if (r.lo_open ? x <= r.lo : x < r.lo) ok = false;
    if (r.hi_open ? x >= r.hi : x > r.hi) ok = false;
  }
  if (!ok)
    fail(yaml::where(v, s.source), label, fmt::format("expected {}, got {}", range_text(r), describe(v)));
  return x;
}

bool to_bool(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label) {
  if (v.is_scalar() && !v.quoted) {
    if (v.text == "true" || v.text == "True" || v.text == "TRUE") return true;
    if (v.text == "false" || v.text == "False" || v.text == "FALSE") return false;
  }
  fail(yaml::where(v, s.source), label, "expected true or false, got " + describe(v));
}

std::string to_string(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label) {
  if (!v.is_scalar()) fail(yaml::where(v, s.source), label, "expected a string, got " + describe(v));
  return v.text;
}

std::string to_enum(const SpecNodeImpl& s, const yaml::Node& v, const std::string& label,
                    const std::vector<std::string>& allowed) {
  if (v.is_scalar() && std::find(allowed.begin(), allowed.end(), v.text) != allowed.end())
    return v.text;
  std::string msg = fmt::format("expected one of {}; got {}", join(allowed), describe(v));
  if (v.is_scalar())
    if (std::string c = closest(v.text, allowed); !c.empty()) msg += fmt::format(" (did you mean '{}'?)", c);
  fail(yaml::where(v, s.source), label, msg);
}

double get_double(const SpecNodeImpl& s, const std::string& key, double def, const Range& range) {
  const yaml::Node* v = value(s, key);
  return v ? to_double(s, *v, label(s, key), range) : def;
}

void check_keys(const SpecNodeImpl& s, const std::vector<std::string>& known,
                const std::vector<std::pair<std::string, std::string>>& moved) {
  if (!s.node || !s.node->is_map()) return;
  std::vector<std::string> all = s.implicit_keys;
  for (const auto& k : known)
    if (std::find(all.begin(), all.end(), k) == all.end()) all.push_back(k);
  for (const auto& [k, v] : s.node->entries) {
    if (std::find(all.begin(), all.end(), k->text) != all.end()) continue;
    std::string msg = s.what.empty() ? "unknown top-level key '" : "unknown key '";
    msg += yaml::printable(k->text) + "'";
    std::string hint;
    for (const auto& [from, to] : moved)
      if (ascii_lower(k->text) == ascii_lower(from)) hint = to;
    if (hint.empty()) hint = closest(k->text, all);
    if (!hint.empty()) msg += fmt::format(" (did you mean '{}'?)", hint);
    else msg += fmt::format(" (allowed: {})", join(all));
    fail(yaml::where(*k, s.source), s.what, msg);
  }
}

}  // namespace spec

// ---- SpecNode --------------------------------------------------------------------------

SpecNode::SpecNode() = default;
SpecNode::SpecNode(std::shared_ptr<const SpecNodeImpl> impl) : impl_(std::move(impl)) {}

namespace {
// A default-constructed SpecNode reads as an empty mapping with no position.
const SpecNodeImpl& empty_impl() {
  static const SpecNodeImpl e{nullptr, "", "<no config>", "", ".", {}};
  return e;
}
}  // namespace

#define IMPL (impl_ ? *impl_ : empty_impl())

bool SpecNode::has(const std::string& key) const { return spec::value(IMPL, key) != nullptr; }

int64_t SpecNode::get_int(const std::string& key, int64_t def, int64_t min, int64_t max) const {
  const yaml::Node* v = spec::value(IMPL, key);
  return v ? spec::to_int(IMPL, *v, spec::label(IMPL, key), min, max) : def;
}

int64_t SpecNode::require_int(const std::string& key, int64_t min, int64_t max) const {
  if (!has(key)) fail("", "missing required field '" + key + "'");
  return get_int(key, 0, min, max);
}

double SpecNode::get_double(const std::string& key, double def, double min, double max) const {
  return spec::get_double(IMPL, key, def, spec::Range{min, max});
}

bool SpecNode::get_bool(const std::string& key, bool def) const {
  const yaml::Node* v = spec::value(IMPL, key);
  return v ? spec::to_bool(IMPL, *v, spec::label(IMPL, key)) : def;
}

std::string SpecNode::get_string(const std::string& key, const std::string& def) const {
  const yaml::Node* v = spec::value(IMPL, key);
  return v ? spec::to_string(IMPL, *v, spec::label(IMPL, key)) : def;
}

std::string SpecNode::get_enum(const std::string& key, const std::string& def,
                               const std::vector<std::string>& allowed) const {
  const yaml::Node* v = spec::value(IMPL, key);
  return v ? spec::to_enum(IMPL, *v, spec::label(IMPL, key), allowed) : def;
}

std::array<int64_t, 2> SpecNode::get_pair(const std::string& key, std::array<int64_t, 2> def,
                                          int64_t min, int64_t max) const {
  const yaml::Node* v = spec::value(IMPL, key);
  if (!v) return def;
  const std::string l = spec::label(IMPL, key);
  if (v->is_scalar()) {
    int64_t x = spec::to_int(IMPL, *v, l, min, max);
    return {x, x};
  }
  if (!v->is_seq() || v->items.size() != 2) {
    std::string got = v->is_seq() ? fmt::format("a list of {}", v->items.size()) : yaml::describe(*v);
    spec::fail(yaml::where(*v, IMPL.source), l,
               fmt::format("expected {} or a list of two, got {}", spec::int_range_text(min, max), got));
  }
  return {spec::to_int(IMPL, *v->items[0], l + "[0]", min, max),
          spec::to_int(IMPL, *v->items[1], l + "[1]", min, max)};
}

std::array<int64_t, 2> SpecNode::require_pair(const std::string& key, int64_t min, int64_t max) const {
  if (!has(key)) fail("", "missing required field '" + key + "'");
  return get_pair(key, {0, 0}, min, max);
}

void SpecNode::check_keys(const std::vector<std::string>& known) const { spec::check_keys(IMPL, known); }

std::string SpecNode::location(const std::string& key) const { return spec::location(IMPL, key); }

void SpecNode::fail(const std::string& key, const std::string& message) const {
  spec::fail(spec::location(IMPL, key), spec::label(IMPL, key), message);
}

#undef IMPL

}  // namespace mnistctl
