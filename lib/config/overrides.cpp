// --set overrides on the config tree (see overrides.h).
#include "config/overrides.h"

#include <fmt/format.h>

#include "core/error.h"

namespace mnistctl {

namespace {

std::vector<std::string> split_path(const std::string& path, const std::string& origin) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty())
      throw UsageError(origin + ": empty segment in the key path '" + yaml::printable(path) + "'");
    parts.push_back(part);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string join_path(const std::vector<std::string>& parts, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (i ? "." : "") + parts[i];
  return s;
}

yaml::NodePtr new_map(const std::string& origin) {
  auto m = std::make_shared<yaml::Node>();
  m->kind = yaml::Node::Kind::Map;
  m->origin = origin;
  return m;
}

void apply_one(yaml::Node& root, const std::string& text) {
  const std::string origin = "--set " + yaml::printable(text, 200);
  size_t eq = text.find('=');
  if (eq == std::string::npos) throw UsageError(origin + ": expected key.path=value");
  std::string path = text.substr(0, eq);
  if (path.empty()) throw UsageError(origin + ": empty key path before '='");
  std::vector<std::string> parts = split_path(path, origin);
  yaml::NodePtr value = yaml::parse(text.substr(eq + 1), "", origin);

  yaml::Node* cur = &root;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& seg = parts[i];
    const bool last = i + 1 == parts.size();
    yaml::NodePtr* slot = nullptr;  // where the next node lives in `cur`
    if (cur->is_seq()) {
      bool digits = seg.size() <= 9 && seg.find_first_not_of("0123456789") == std::string::npos;
      if (!digits)
        throw UsageError(fmt::format("{}: '{}' is a list: expected an index, got '{}'", origin,
                                     yaml::printable(join_path(parts, i)), yaml::printable(seg)));
      size_t idx = std::stoul(seg);
      if (idx >= cur->items.size())
        throw UsageError(fmt::format("{}: index {} is out of range: '{}' has {} item(s)", origin,
                                     idx, yaml::printable(join_path(parts, i)), cur->items.size()));
      slot = &cur->items[idx];
    } else if (cur->is_map()) {
      if (auto* e = cur->entry(seg)) {
        slot = &e->second;
      } else {
        auto key = std::make_shared<yaml::Node>();
        key->kind = yaml::Node::Kind::Scalar;
        key->text = seg;
        key->origin = origin;
        cur->entries.emplace_back(key, last ? value : new_map(origin));
        slot = &cur->entries.back().second;
      }
    } else {
      throw UsageError(fmt::format("{}: '{}' is {}, not a mapping or a list", origin,
                                   yaml::printable(join_path(parts, i)), yaml::describe(*cur)));
    }
    if (last) {
      *slot = value;
    } else {
      // An empty value on the way ("lr_schedule:" with nothing under it) becomes a mapping.
      if ((*slot)->is_null()) *slot = new_map(origin);
      cur = slot->get();
    }
  }
}

}  // namespace

void apply_overrides(yaml::Node& root, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) apply_one(root, o);
}

}  // namespace mnistctl
