// --set overrides: "dotted.path=value" edits of a parsed config tree, applied before
// validation so that overridden values are checked exactly like values from the file.
// Private to lib/config.
#pragma once

#include <string>
#include <vector>

#include "config/yaml_tree.h"

namespace mnistctl {

// Applies each override in order to the top-level mapping `root`. The value is parsed as
// a YAML scalar or flow node ("3", "[3, 3]", "{type: flatten}"), and it and any mapping the
// path creates carry the origin "--set <text>", so later errors name the override.
// Path segments walk mappings by key and lists by index; a missing mapping key is created.
// Throws UsageError "--set <text>: ..." for a malformed override (no '=', an empty path or
// segment, an index that is not one or out of range, a path through a scalar).
void apply_overrides(yaml::Node& root, const std::vector<std::string>& overrides);

}  // namespace mnistctl
