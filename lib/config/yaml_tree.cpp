// yaml-cpp's event parser -> yaml::Node tree, and the tree -> YAML text (yaml-cpp's Emitter).
// See yaml_tree.h for why the config loader keeps its own tree.
#include "config/yaml_tree.h"

#include <map>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace mnistctl::yaml {

const std::pair<NodePtr, NodePtr>* Node::entry(const std::string& key) const {
  for (const auto& e : entries)
    if (e.first->text == key) return &e;
  return nullptr;
}

std::pair<NodePtr, NodePtr>* Node::entry(const std::string& key) {
  for (auto& e : entries)
    if (e.first->text == key) return &e;
  return nullptr;
}

const Node* Node::get(const std::string& key) const {
  const auto* e = entry(key);
  return e ? e->second.get() : nullptr;
}

std::string printable(const std::string& text, size_t max) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

std::string describe(const Node& n) {
  switch (n.kind) {
    case Node::Kind::Null: return "nothing";
    case Node::Kind::Seq: return "a list";
    case Node::Kind::Map: return "a mapping";
    case Node::Kind::Scalar: break;
  }
  return n.quoted ? "the string \"" + printable(n.text) + "\"" : "'" + printable(n.text) + "'";
}

std::string where(const Node& n, const std::string& source) {
  if (!n.origin.empty()) return n.origin;
  return fmt::format("{}:{}:{}", source, n.line, n.col);
}

NodePtr clone(const Node& n) {
  auto c = std::make_shared<Node>(n);
  for (auto& it : c->items) it = clone(*it);
  for (auto& e : c->entries) e = {clone(*e.first), clone(*e.second)};
  return c;
}

namespace {

// Builds the tree from parser events. A container is attached to its parent when it ends
// (its parent's next event only comes after that), so anchors always name complete nodes.
class Builder : public YAML::EventHandler {
 public:
  Builder(std::string source, std::string origin)
      : source_(std::move(source)), origin_(std::move(origin)) {}

  NodePtr root;
  int documents = 0;
  YAML::Mark second_document;

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second_document = mark;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto n = make(mark, Node::Kind::Null);
    remember(anchor, n);
    add(n);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) fail(mark, "alias to an unknown or enclosing anchor");
    NodePtr copy = clone(*it->second);
    count(*copy, mark);
    add(copy);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (tag == kCoreTag + "null") {  // yaml-cpp reports a tagged null ("!!null ~") as a scalar
      if (value != "" && value != "~" && value != "null" && value != "Null" && value != "NULL")
        fail(mark, "!!null takes no value but null or ~, got '" + printable(value) + "'");
      OnNull(mark, anchor);
      return;
    }
    auto n = make(mark, Node::Kind::Scalar);
    n->text = value;
    n->quoted = scalar_is_string(mark, tag);
    remember(anchor, n);
    add(n);
  }
  // "?": a plain scalar, typed by the field that reads it; "!": quoted or block, a string. The
  // core schema's explicit tags say the same in words (!!str a string, !!int 3 a plain 3);
  // any other tag would be a type this loader does not have.
  static inline const std::string kCoreTag = "tag:yaml.org,2002:";
  bool scalar_is_string(const YAML::Mark& mark, const std::string& tag) {
    if (tag == "?") return false;
    if (tag == "!") return true;
    const std::string name = tag.rfind(kCoreTag, 0) == 0 ? tag.substr(kCoreTag.size()) : "";
    if (name == "str") return true;
    if (name == "int" || name == "float" || name == "bool") return false;
    refuse_tag(mark, tag);
  }
  // A mapping or a list takes no tag but its own kind's (!!map, !!seq).
  void check_collection_tag(const YAML::Mark& mark, const std::string& tag, const char* kind) {
    if (tag.empty() || tag == "?" || tag == "!" || tag == kCoreTag + kind) return;
    const char* what = std::string(kind) == "map" ? "a mapping" : "a list";
    fail(mark, "unsupported tag " + shown_tag(tag) + " on " + what + " (" + what + " takes no tag, or !!" + kind + ")");
  }
  static std::string shown_tag(const std::string& tag) {
    return tag.rfind(kCoreTag, 0) == 0 ? "!!" + tag.substr(kCoreTag.size()) : tag;
  }
  [[noreturn]] void refuse_tag(const YAML::Mark& mark, const std::string& tag) const {
    fail(mark, "unsupported tag " + shown_tag(tag) +
                   " (the config's values take no tag, or one of !!str, !!int, !!float, !!bool, !!null)");
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    check_collection_tag(mark, tag, "seq");
    open(make(mark, Node::Kind::Seq), anchor, style);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    check_collection_tag(mark, tag, "map");
    open(make(mark, Node::Kind::Map), anchor, style);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    NodePtr node;
    NodePtr key;  // a mapping's key waiting for its value
    YAML::anchor_t anchor;
  };

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& what) const {
    if (!origin_.empty()) throw UsageError(fmt::format("{}: invalid YAML value: {}", origin_, what));
    throw UsageError(fmt::format("{}:{}:{}: {}", source_, mark.line + 1, mark.column + 1, what));
  }
  [[noreturn]] void fail(const Node& at, const std::string& what) const {
    if (!origin_.empty()) throw UsageError(fmt::format("{}: invalid YAML value: {}", origin_, what));
    throw UsageError(fmt::format("{}:{}:{}: {}", source_, at.line, at.col, what));
  }

  NodePtr make(const YAML::Mark& mark, Node::Kind kind) {
    if (++nodes_ > kMaxNodes) fail(mark, fmt::format("too many YAML nodes (more than {})", kMaxNodes));
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->line = mark.line + 1;
    n->col = mark.column + 1;
    n->origin = origin_;
    return n;
  }
  void count(const Node& n, const YAML::Mark& mark) {
    if (++nodes_ > kMaxNodes) fail(mark, fmt::format("too many YAML nodes (more than {})", kMaxNodes));
    for (const auto& it : n.items) count(*it, mark);
    for (const auto& e : n.entries) {
      count(*e.first, mark);
      count(*e.second, mark);
    }
  }
  void remember(YAML::anchor_t anchor, const NodePtr& n) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = n;
  }
  void open(NodePtr n, YAML::anchor_t anchor, YAML::EmitterStyle::value style) {
    n->flow = style == YAML::EmitterStyle::Flow;
    stack_.push_back({std::move(n), nullptr, anchor});
  }
  void close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    remember(f.anchor, f.node);
    add(f.node);
  }
  void add(const NodePtr& n) {
    if (stack_.empty()) {
      root = n;
      return;
    }
    Frame& f = stack_.back();
    if (f.node->is_seq()) {
      f.node->items.push_back(n);
    } else if (!f.key) {
      if (!n->is_scalar()) fail(*n, "a mapping key must be a plain name, not " + describe(*n));
      // YAML 1.1's merge key: not part of YAML 1.2, and yaml-cpp would take it as a field named "<<".
      if (n->text == "<<") fail(*n, "merge keys ('<<: *anchor') are not supported: write the fields out");
      if (const auto* first = f.node->entry(n->text))
        fail(*n, fmt::format("duplicate key '{}' (first at line {})", printable(n->text),
                             first->first->line));
      f.key = n;
    } else {
      // yaml-cpp marks an empty value ("epochs:") at the next token: point at its key.
      if (n->is_null() && n->origin.empty()) {
        n->line = f.key->line;
        n->col = f.key->col;
      }
      f.node->entries.emplace_back(std::move(f.key), n);
      f.key.reset();
    }
  }

  std::string source_, origin_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, NodePtr> anchors_;
  size_t nodes_ = 0;
};

void emit_node(YAML::Emitter& out, const Node& n, bool in_flow) {
  bool flow = in_flow || n.flow;
  switch (n.kind) {
    case Node::Kind::Null:
      out << YAML::Null;
      break;
    case Node::Kind::Scalar:
      if (n.quoted) out << YAML::DoubleQuoted;
      out << n.text;
      break;
    case Node::Kind::Seq:
      out << (flow ? YAML::Flow : YAML::Block) << YAML::BeginSeq;
      for (const auto& it : n.items) emit_node(out, *it, flow);
      out << YAML::EndSeq;
      break;
    case Node::Kind::Map:
      out << (flow ? YAML::Flow : YAML::Block) << YAML::BeginMap;
      for (const auto& e : n.entries) {
        out << YAML::Key;
        emit_node(out, *e.first, flow);
        out << YAML::Value;
        emit_node(out, *e.second, flow);
      }
      out << YAML::EndMap;
      break;
  }
}

}  // namespace

NodePtr parse(const std::string& text, const std::string& source, const std::string& origin) {
  std::istringstream in(text);
  Builder b(source, origin);
  try {
    YAML::Parser parser(in);
    // A second document is an error (the rest of the file would be silently ignored).
    if (parser.HandleNextDocument(b)) parser.HandleNextDocument(b);
  } catch (const YAML::Exception& e) {
    // yaml-cpp's depth guard reports "bad file"; say what it means.
    bool deep = dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr;
    std::string msg = deep ? "nested too deeply" : printable(e.msg, 200);
    if (!origin.empty()) throw UsageError(fmt::format("{}: invalid YAML value: {}", origin, msg));
    int line = e.mark.is_null() ? 1 : e.mark.line + 1;
    int col = e.mark.is_null() ? 1 : e.mark.column + 1;
    throw UsageError(fmt::format("{}:{}:{}: YAML syntax error: {}", source, line, col, msg));
  }
  if (b.documents > 1) {
    if (!origin.empty()) throw UsageError(origin + ": invalid YAML value: more than one document");
    throw UsageError(fmt::format("{}:{}:{}: a second YAML document; a config is one document",
                                 source, b.second_document.line + 1,
                                 b.second_document.column + 1));
  }
  NodePtr root = b.root ? b.root : std::make_shared<Node>();
  if (!b.root) {
    root->line = root->col = 1;
    root->origin = origin;
  }
  return root;
}

std::string emit(const Node& root) {
  YAML::Emitter out;
  out.SetIndent(2);
  emit_node(out, root, false);
  if (!out.good()) throw RuntimeError("cannot emit the resolved config: " + out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

}  // namespace mnistctl::yaml
