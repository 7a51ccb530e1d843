// config_differences() (config.h): which keys two resolved configs disagree on, for
// `train --resume` refusing a --config that no longer matches the run it would continue.
// Compared as YAML trees, so key order, flow style and comments do not count.
#include <set>

#include "config/config.h"
#include "config/yaml_tree.h"

namespace mnistctl {
namespace {

using yaml::Node;

void diff(const Node* a, const Node* b, const std::string& path, std::vector<std::string>& out) {
  const std::string here = path.empty() ? "(the whole document)" : path;
  if (a == nullptr || b == nullptr || a->kind != b->kind) {
    out.push_back(here);
    return;
  }
  auto child = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
  switch (a->kind) {
    case Node::Kind::Null:
      return;
    case Node::Kind::Scalar:
      if (a->text != b->text) out.push_back(here);
      return;
    case Node::Kind::Seq:
      if (a->items.size() != b->items.size()) {
        out.push_back(here);
        return;
      }
      for (size_t i = 0; i < a->items.size(); ++i) diff(a->items[i].get(), b->items[i].get(), child(std::to_string(i)), out);
      return;
    case Node::Kind::Map: {
      std::vector<std::string> keys;
      std::set<std::string> seen;
      for (const auto* m : {a, b})
        for (const auto& e : m->entries)
          if (seen.insert(e.first->text).second) keys.push_back(e.first->text);
      for (const auto& k : keys) diff(a->get(k), b->get(k), child(k), out);
      return;
    }
  }
}

}  // namespace

std::vector<std::string> config_differences(const Config& a, const Config& b) {
  yaml::NodePtr ta = yaml::parse(a.resolved_yaml, a.source), tb = yaml::parse(b.resolved_yaml, b.source);
  std::vector<std::string> out;
  diff(ta.get(), tb.get(), "", out);
  return out;
}

}  // namespace mnistctl
