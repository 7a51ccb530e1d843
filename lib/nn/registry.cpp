#include "nn/registry.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/closest.h"
#include "core/error.h"

namespace mnistctl {
namespace {
// Function-local static: registrations run during static initialisation, in any order.
std::map<std::string, LayerFactory>& table() {
  static std::map<std::string, LayerFactory> t;
  return t;
}
}  // namespace

void LayerRegistry::add(const std::string& type, LayerFactory factory) {
  if (!table().emplace(type, std::move(factory)).second)
    throw std::logic_error("layer type registered twice: " + type);
}

std::unique_ptr<Layer> LayerRegistry::create(const LayerSpec& spec) {
  auto it = table().find(spec.type);
  if (it == table().end()) {
    const std::string hint = closest_match(spec.type, types());
    spec.node.fail("type", fmt::format("unknown layer type '{}'{} (known: {})", spec.type,
                                       hint.empty() ? "" : fmt::format(": did you mean '{}'?", hint),
                                       fmt::join(types(), ", ")));
  }
  return it->second(spec);
}

std::vector<std::string> LayerRegistry::types() {
  std::vector<std::string> names;
  for (const auto& kv : table()) names.push_back(kv.first);
  return names;  // std::map keeps them sorted
}

}  // namespace mnistctl
