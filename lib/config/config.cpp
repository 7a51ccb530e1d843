// The config loader: YAML text -> tree (yaml_tree) -> --set overrides -> validated Config.
//
// Validation walks the sections in a fixed order (name, data, network, init, train; unknown
// keys of a mapping before its values) and stops at the first problem, with a
// one-line message at the offending key or value (spec_node_impl.h has the format). The
// loader checks the sections it owns completely (unknown keys, types, ranges, enums) but
// only the shape of each layer (a mapping with a string `type`, a unique name): each
// layer's factory reads and checks its own fields through the SpecNode it is handed.
#include "config/config.h"

#include <cctype>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "config/overrides.h"
#include "config/spec_node_impl.h"
#include "config/yaml_tree.h"
#include "core/error.h"
#include "core/fs.h"

namespace mnistctl {

namespace {

using Impl = SpecNodeImpl;
using ImplPtr = std::shared_ptr<SpecNodeImpl>;
using spec::Range;

constexpr size_t kMaxLayers = 1000;
constexpr int64_t kMaxDim = 4096;

// Run folders are named after the config: keep names to safe file-name characters.
bool valid_name(const std::string& s, size_t max_len, bool allow_dot) {
  if (s.empty() || s.size() > max_len || s[0] == '.' || s[0] == '-') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || (allow_dot && c == '.')))
      return false;
  return true;
}

// The default name: the file's stem, reduced to safe characters.
std::string name_from_source(const std::string& source) {
  if (source.empty() || source[0] == '<') return "config";
  std::string stem = std::filesystem::path(source).stem().string();
  for (char& c : stem)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  if (stem.size() > 64) stem.resize(64);
  return valid_name(stem, 64, true) ? stem : "config";
}

yaml::NodePtr child(const Impl& s, const std::string& key) {
  if (!s.node || !s.node->is_map()) return nullptr;
  auto* e = s.node->entry(key);
  return e ? e->second : nullptr;
}

// The section under `key` of `parent`: a mapping, or empty when absent or written with
// nothing under it ("init:").
ImplPtr section(const Impl& parent, const std::string& key) {
  auto s = std::make_shared<Impl>();
  s->source = parent.source;
  s->what = spec::label(parent, key);
  s->self = spec::location(parent, key);
  s->node = child(parent, key);
  if (s->node && !s->node->is_map() && !s->node->is_null())
    spec::fail(s->self, s->what, "expected a mapping of settings, got " + yaml::describe(*s->node));
  return s;
}

int64_t get_int(const Impl& s, const std::string& key, int64_t def, int64_t min, int64_t max) {
  const yaml::Node* v = spec::value(s, key);
  return v ? spec::to_int(s, *v, spec::label(s, key), min, max) : def;
}
bool get_bool(const Impl& s, const std::string& key, bool def) {
  const yaml::Node* v = spec::value(s, key);
  return v ? spec::to_bool(s, *v, spec::label(s, key)) : def;
}
std::string get_enum(const Impl& s, const std::string& key, const std::string& def,
                     const std::vector<std::string>& allowed) {
  const yaml::Node* v = spec::value(s, key);
  return v ? spec::to_enum(s, *v, spec::label(s, key), allowed) : def;
}

// Keys users put one level too high (or too low), with where they belong.
std::vector<std::pair<std::string, std::string>> prefixed(const std::string& prefix,
                                                          const std::vector<std::string>& keys) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& k : keys) out.emplace_back(k, prefix + k);
  return out;
}
const std::vector<std::string> kDataKeys = {"dataset", "train_limit", "test_limit", "shuffle"};
const std::vector<std::string> kNetworkKeys = {"input", "layers"};
const std::vector<std::string> kInitKeys = {"type", "scale", "sigma", "rnd_type", "factor_type", "magnitude"};
// The optimizer's name and fields sit directly in `train` (optimizer: sgd, learning_rate: 0.1),
// as MXNet's fit(optimizer='sgd', optimizer_params={'learning_rate': 0.1}) reads, so that
// `--set train.learning_rate=0.05` works. Only lr_schedule is a nested mapping.
const std::vector<std::string> kTrainKeys = {"batch_size",    "epochs",        "seed",       "log_interval",
                                             "deterministic", "allow_tf32",    "optimizer",  "learning_rate",
                                             "momentum",      "weight_decay",  "beta1",      "beta2",
                                             "epsilon",       "lr_schedule",   "precision",     "early_stopping",
                                             "stop_at_accuracy", "cuda_graphs"};
const std::vector<std::string> kScheduleKeys = {"type", "factor", "step_epochs", "min_lr"};
const std::vector<std::string> kEarlyStoppingKeys = {"metric", "patience", "min_delta"};

DataSpec read_data(const Impl& top) {
  ImplPtr s = section(top, "data");
  spec::check_keys(*s, kDataKeys);
  DataSpec d;
  d.dataset = get_enum(*s, "dataset", d.dataset, {"mnist", "fashion-mnist"});
  d.train_limit = get_int(*s, "train_limit", d.train_limit, 0, int64_t(1) << 40);
  d.test_limit = get_int(*s, "test_limit", d.test_limit, 0, int64_t(1) << 40);
  d.shuffle = get_bool(*s, "shuffle", d.shuffle);
  return d;
}

NetworkSpec read_network(const Impl& top) {
  if (!spec::value(top, "network"))
    spec::fail(top.self, "", "missing required section 'network' (its 'layers' list describes the model)");
  ImplPtr s = section(top, "network");
  spec::check_keys(*s, kNetworkKeys);
  NetworkSpec net;

  if (const yaml::Node* in = spec::value(*s, "input")) {
    const std::string l = spec::label(*s, "input");
    if (!in->is_seq() || in->items.empty() || in->items.size() > 3)
      spec::fail(yaml::where(*in, s->source), l,
                 "expected a list of 1 to 3 sizes per sample, like [1, 28, 28], got " +
                     (in->is_seq() ? fmt::format("a list of {}", in->items.size()) : yaml::describe(*in)));
    net.input.dims.clear();
    for (size_t i = 0; i < in->items.size(); ++i)
      net.input.dims.push_back(spec::to_int(*s, *in->items[i], fmt::format("{}[{}]", l, i), 1, kMaxDim));
  }

  const yaml::NodePtr layers = child(*s, "layers");
  const std::string l = spec::label(*s, "layers");
  if (!layers) spec::fail(spec::location(*s, ""), s->what, "missing required field 'layers'");
  if (!layers->is_seq())
    spec::fail(yaml::where(*layers, s->source), l,
               "expected a list of layers, got " + yaml::describe(*layers));
  if (layers->items.empty())
    spec::fail(yaml::where(*layers, s->source), l, "expected at least one layer, got an empty list");
  if (layers->items.size() > kMaxLayers)
    spec::fail(yaml::where(*layers, s->source), l,
               fmt::format("expected at most {} layers, got {}", kMaxLayers, layers->items.size()));

  std::map<std::string, size_t> seen;  // name -> index
  for (size_t i = 0; i < layers->items.size(); ++i) {
    const yaml::NodePtr& item = layers->items[i];
    const std::string li = fmt::format("{}[{}]", l, i);
    if (!item->is_map())
      spec::fail(yaml::where(*item, s->source), li,
                 "expected a mapping with a 'type', like {type: flatten}, got " + yaml::describe(*item));
    auto layer = std::make_shared<Impl>();
    layer->node = item;
    layer->source = s->source;
    layer->self = yaml::where(*item, s->source);
    layer->what = li;
    layer->implicit_keys = {"type", "name"};

    const yaml::Node* type = spec::value(*layer, "type");
    if (!type) spec::fail(layer->self, li, "missing required field 'type'");
    LayerSpec ls;
    ls.type = spec::to_string(*layer, *type, li + ".type");
    if (!valid_name(ls.type, 64, false))
      spec::fail(yaml::where(*type, s->source), li + ".type",
                 "expected a layer type name like fully_connected, got " + yaml::describe(*type));
    ls.name = ls.type + std::to_string(i);
    if (const yaml::Node* name = spec::value(*layer, "name")) {
      ls.name = spec::to_string(*layer, *name, li + ".name");
      if (!valid_name(ls.name, 64, false))
        spec::fail(yaml::where(*name, s->source), li + ".name",
                   "expected 1 to 64 letters, digits, '_' or '-', got " + yaml::describe(*name));
    }
    if (auto it = seen.find(ls.name); it != seen.end()) {
      const yaml::Node* name = spec::value(*layer, "name");
      spec::fail(name ? yaml::where(*name, s->source) : layer->self, li,
                 fmt::format("duplicate layer name '{}' (also {}[{}])", ls.name, l, it->second));
    }
    seen[ls.name] = i;
    layer->what = fmt::format("layer '{}' ({})", ls.name, ls.type);
    layer->sep = ": ";
    ls.node = SpecNode(layer);
    net.layers.push_back(std::move(ls));
  }
  return net;
}

InitSpec read_init(const Impl& top) {
  ImplPtr s = section(top, "init");
  spec::check_keys(*s, kInitKeys);
  InitSpec in;
  in.type = get_enum(*s, "type", in.type, {"uniform", "normal", "xavier", "kaiming"});
  in.scale = spec::get_double(*s, "scale", in.scale, Range{0, 10, true, false});
  in.sigma = spec::get_double(*s, "sigma", in.sigma, Range{0, 10, true, false});
  in.rnd_type = get_enum(*s, "rnd_type", in.rnd_type, {"uniform", "gaussian"});
  in.factor_type = get_enum(*s, "factor_type", in.factor_type, {"avg", "in", "out"});
  in.magnitude = spec::get_double(*s, "magnitude", in.magnitude, Range{0, 100, true, false});
  return in;
}

// The optimizer's fields, read from `train` itself (labels "train.learning_rate", ...).
OptimizerSpec read_optimizer(const Impl& train) {
  const Impl* s = &train;
  OptimizerSpec o;
  o.type = get_enum(*s, "optimizer", o.type, {"sgd", "adam"});
  o.learning_rate = spec::get_double(*s, "learning_rate", o.learning_rate, Range{0, 10, true, false});
  o.momentum = spec::get_double(*s, "momentum", o.momentum, Range{0, 1, false, true});
  o.weight_decay = spec::get_double(*s, "weight_decay", o.weight_decay, Range{0, 1});
  o.beta1 = spec::get_double(*s, "beta1", o.beta1, Range{0, 1, false, true});
  o.beta2 = spec::get_double(*s, "beta2", o.beta2, Range{0, 1, false, true});
  o.epsilon = spec::get_double(*s, "epsilon", o.epsilon, Range{0, 1, true, false});
  return o;
}

ScheduleSpec read_schedule(const Impl& train, const OptimizerSpec& opt) {
  ImplPtr s = section(train, "lr_schedule");
  spec::check_keys(*s, kScheduleKeys);
  ScheduleSpec sc;
  sc.type = get_enum(*s, "type", sc.type, {"fixed", "step", "cosine"});
  sc.factor = spec::get_double(*s, "factor", sc.factor, Range{0, 1, true, false});
  sc.step_epochs = get_int(*s, "step_epochs", sc.step_epochs, 1, 100000);
  sc.min_lr = spec::get_double(*s, "min_lr", sc.min_lr, Range{0, 10});
  if (sc.type == "cosine" && sc.min_lr > opt.learning_rate)
    spec::fail(spec::location(*s, "min_lr"), spec::label(*s, "min_lr"),
               fmt::format("must not exceed train.learning_rate ({}), got {}",
                           opt.learning_rate, sc.min_lr));
  return sc;
}

// Present (a mapping, possibly empty) turns early stopping on; absent or null leaves it off,
// so `--set train.early_stopping=` switches it off again.
EarlyStoppingSpec read_early_stopping(const Impl& train) {
  EarlyStoppingSpec e;
  ImplPtr s = section(train, "early_stopping");
  if (!s->node || s->node->is_null()) return e;
  spec::check_keys(*s, kEarlyStoppingKeys);
  e.enabled = true;
  e.metric = get_enum(*s, "metric", e.metric, {"val_loss", "val_accuracy"});
  e.patience = get_int(*s, "patience", e.patience, 1, 100000);
  e.min_delta = spec::get_double(*s, "min_delta", e.min_delta, Range{0, 1e6});
  return e;
}

TrainSpec read_train(const Impl& top) {
  ImplPtr s = section(top, "train");
  auto moved = prefixed("lr_schedule.", kScheduleKeys);
  moved.erase(moved.begin());  // "type" is ambiguous: let edit distance handle it
  moved.emplace_back("lr", "learning_rate");
  for (auto& m : prefixed("early_stopping.", kEarlyStoppingKeys)) moved.push_back(m);
  spec::check_keys(*s, kTrainKeys, moved);
  TrainSpec t;
  t.batch_size = get_int(*s, "batch_size", t.batch_size, 1, 65536);
  t.epochs = get_int(*s, "epochs", t.epochs, 1, 100000);
  t.seed = get_int(*s, "seed", t.seed, 0, int64_t(1) << 62);
  t.log_interval = get_int(*s, "log_interval", t.log_interval, 0, 1000000000);
  t.deterministic = get_bool(*s, "deterministic", t.deterministic);
  t.allow_tf32 = get_bool(*s, "allow_tf32", t.allow_tf32);
  t.precision = get_enum(*s, "precision", t.precision, {"fp32", "bf16"});
  t.cuda_graphs = get_bool(*s, "cuda_graphs", t.cuda_graphs);
  t.optimizer = read_optimizer(*s);
  t.lr_schedule = read_schedule(*s, t.optimizer);
  t.early_stopping = read_early_stopping(*s);
  t.stop_at_accuracy = spec::get_double(*s, "stop_at_accuracy", t.stop_at_accuracy, Range{0, 1, true, false});
  return t;
}

Config validate(const yaml::NodePtr& root, const std::string& source) {
  auto top = std::make_shared<Impl>();
  top->node = root;
  top->source = source;
  top->self = yaml::where(*root, source);
  top->what = "";

  // Section keys written at the top level by mistake point to where they belong.
  std::vector<std::pair<std::string, std::string>> moved;
  for (const auto& [prefix, keys] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"data.", kDataKeys}, {"network.", kNetworkKeys}, {"train.", kTrainKeys}}) {
    auto p = prefixed(prefix, keys);
    moved.insert(moved.end(), p.begin(), p.end());
  }
  moved.emplace_back("lr", "train.learning_rate");
  spec::check_keys(*top, {"name", "data", "network", "init", "train"}, moved);

  Config c;
  c.source = source;
  c.name = name_from_source(source);
  if (const yaml::Node* n = spec::value(*top, "name")) {
    c.name = spec::to_string(*top, *n, "name");
    if (!valid_name(c.name, 64, true))
      spec::fail(yaml::where(*n, source), "name",
                 "expected 1 to 64 letters, digits, '.', '_' or '-' (it names the run folder), got " +
                     yaml::describe(*n));
  }
  c.data = read_data(*top);
  c.network = read_network(*top);
  c.init = read_init(*top);
  c.train = read_train(*top);
  return c;
}

}  // namespace

Config load_config_text(const std::string& text, const std::string& source,
                        const std::vector<std::string>& overrides) {
  if (text.size() > kMaxConfigBytes)
    throw UsageError(fmt::format("{}: too large for a config file ({} bytes, at most {})", source,
                                 text.size(), kMaxConfigBytes));
  yaml::NodePtr root = yaml::parse(text, source);
  if (root->is_null())
    throw UsageError(fmt::format("{}:{}:{}: the config is empty; expected a mapping with at least "
                                 "network.layers",
                                 source, root->line, root->col));
  if (!root->is_map())
    throw UsageError(fmt::format("{}: expected a mapping (name, data, network, init, train) at the "
                                 "top, got {}",
                                 yaml::where(*root, source), yaml::describe(*root)));
  apply_overrides(*root, overrides);
  Config c = validate(root, source);

  // The resolved text names the config explicitly: read back from a checkpoint (another
  // file name), it must give the same Config.
  yaml::NodePtr out = yaml::clone(*root);
  if (!out->entry("name")) {
    auto key = std::make_shared<yaml::Node>();
    key->kind = yaml::Node::Kind::Scalar;
    key->text = "name";
    auto value = std::make_shared<yaml::Node>(*key);
    value->text = c.name;
    out->entries.insert(out->entries.begin(), {key, value});
  }
  c.resolved_yaml = yaml::emit(*out);
  return c;
}

Config load_config_file(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(st))
    throw UsageError(path + ": is a folder, expected a YAML config file");
  if (std::filesystem::is_regular_file(st)) {
    auto size = std::filesystem::file_size(path, ec);
    if (!ec && size > kMaxConfigBytes)
      throw UsageError(fmt::format("{}: too large for a config file ({} bytes, at most {})", path,
                                   size, kMaxConfigBytes));
  }
  std::vector<uint8_t> bytes = read_file(path);  // UsageError naming the file when unreadable
  return load_config_text(std::string(bytes.begin(), bytes.end()), path, overrides);
}

}  // namespace mnistctl
