// A small YAML document model with positions: what the config loader validates, what
// --set edits and what resolved_yaml is emitted from. Private to lib/config.
//
// Why not yaml-cpp's YAML::Node directly: its nodes cannot say which value came from a
// --set override (errors must name the override, not a file line), its non-const
// operator[] silently inserts keys, it accepts duplicate keys, and aliases share nodes
// (an edit through one alias would change the other, and a naive copy can blow up).
// So yaml-cpp's event parser builds this tree instead: every node keeps its 1-based
// line:col, or the --set text it came from; duplicate keys and non-scalar keys are
// rejected; aliases are copied under a node budget.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mnistctl::yaml {

struct Node;
using NodePtr = std::shared_ptr<Node>;

struct Node {
  enum class Kind { Null, Scalar, Seq, Map };
  Kind kind = Kind::Null;
  std::string text;     // Scalar: the value as written (without quotes)
  bool quoted = false;  // Scalar: quoted or a block scalar, so a string whatever it reads like
  bool flow = false;    // Seq/Map: written as [..] / {..}; emitted the same way
  std::vector<NodePtr> items;                        // Seq
  std::vector<std::pair<NodePtr, NodePtr>> entries;  // Map: (key scalar, value), file order
  int line = 0, col = 0;  // 1-based; 0 when made up (no position)
  std::string origin;     // empty: from the file; else "--set <text>" that produced it

  bool is_map() const { return kind == Kind::Map; }
  bool is_seq() const { return kind == Kind::Seq; }
  bool is_scalar() const { return kind == Kind::Scalar; }
  bool is_null() const { return kind == Kind::Null; }

  // The entry whose key is `key`, or nullptr (mappings only).
  const std::pair<NodePtr, NodePtr>* entry(const std::string& key) const;
  std::pair<NodePtr, NodePtr>* entry(const std::string& key);
  // The value under `key`, or nullptr.
  const Node* get(const std::string& key) const;
};

// Most nodes one document may have (aliases included): config files are tiny, and this
// keeps "billion laughs" alias chains from eating memory.
constexpr size_t kMaxNodes = 100000;

// Parses one YAML document. Errors are UsageError, one line:
//   origin empty:  "<source>:<line>:<col>: YAML syntax error: <what>"
//   origin set:    "<origin>: invalid YAML value: <what>"  (the nodes get that origin)
// An empty document (only comments, or nothing) gives a Null node.
NodePtr parse(const std::string& text, const std::string& source, const std::string& origin = "");

// Emits the tree as YAML text (block style except where the input used flow style).
std::string emit(const Node& root);

// A deep copy.
NodePtr clone(const Node& n);

// "<source>:<line>:<col>", or the node's --set origin.
std::string where(const Node& n, const std::string& source);

// For messages: "'abc'" for a scalar (shortened, control characters escaped), "a list",
// "a mapping", "nothing".
std::string describe(const Node& n);

// Makes text safe for a one-line message: control characters escaped, at most `max` chars.
std::string printable(const std::string& text, size_t max = 60);

}  // namespace mnistctl::yaml
