// The ONNX graph writer: the project's layers as standard ONNX operators, built with the ONNX
// project's own generated classes (libonnx, on protobuf) and checked with its checker before
// anything is written. MXNet semantics carried over: convolution and pooling use explicit
// symmetric pads with the floor output size (ceil_mode 0), average pooling divides by the
// whole window (count_include_pad 1), fully_connected reads any input as one vector per
// sample (Flatten, then Gemm with transB), dropout is the identity at inference.
#include "export/onnx_export.h"

#include <cstring>
#include <set>

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include "core/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ONNX raw_data is little-endian");

namespace mnistctl {

namespace {

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

void set_tensor_type(onnx::ValueInfoProto* v, const std::string& name, const Shape& per_sample) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tt->mutable_shape();
  shape->add_dim()->set_dim_param("N");  // the batch: any size
  for (int64_t d : per_sample.dims) shape->add_dim()->set_dim_value(d);
}

std::string dims_str(const onnx::ValueInfoProto& v) {
  std::string s = v.name() + ":[";
  const auto& shape = v.type().tensor_type().shape();
  for (int i = 0; i < shape.dim_size(); ++i) {
    if (i) s += ",";
    const auto& d = shape.dim(i);
    s += d.has_dim_param() ? d.dim_param() : std::to_string(d.dim_value());
  }
  return s + "]";
}

}  // namespace

class OnnxGraphBuilder {
 public:
  OnnxGraphBuilder(onnx::GraphProto* g, const Network& net, const Checkpoint& ckpt, const std::string& source)
      : g_(g), net_(net), ckpt_(ckpt), source_(source) {
    used_ = {"input", "probabilities", "logits"};
  }

  struct Attr {
    std::string name;
    std::vector<int64_t> ints;  // type INTS
    bool scalar = false;        // type INT, value ints[0]
  };

  // A tensor name of its own (a layer named like a graph input or output gets a suffix).
  std::string unique(const std::string& want) {
    std::string n = want;
    for (int i = 1; used_.count(n); ++i) n = fmt::format("{}_{}", want, i);
    used_.insert(n);
    return n;
  }

  // The tensor a layer writes: `probabilities` for the network's last layer.
  std::string output_of(const Layer& l) {
    return &l == net_.layers().back().get() ? std::string("probabilities") : unique(l.name());
  }

  void node(const std::string& op, const std::string& name, const std::vector<std::string>& in,
            const std::string& out, const std::vector<Attr>& attrs = {}) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    for (const auto& a : attrs) {
      onnx::AttributeProto* p = n->add_attribute();
      p->set_name(a.name);
      if (a.scalar) {
        p->set_type(onnx::AttributeProto::INT);
        p->set_i(a.ints.at(0));
      } else {
        p->set_type(onnx::AttributeProto::INTS);
        for (int64_t v : a.ints) p->add_ints(v);
      }
    }
  }

  // Every parameter of the layer as an initializer (in declaration order: weight, then bias),
  // checked against the checkpoint; returns their names.
  std::vector<std::string> params(const Layer& l) {
    std::vector<std::string> names;
    for (const Param& p : l.params()) {
      const NamedTensor* t = ckpt_.find("param/" + p.name);
      if (!t) throw UsageError(fmt::format("{}: checkpoint has no parameter '{}'", source_, p.name));
      if (t->shape != p.shape || static_cast<int64_t>(t->data.size()) != p.shape.numel())
        throw UsageError(fmt::format("{}: parameter '{}' has shape {} in the checkpoint, the network expects {}",
                                     source_, p.name, t->shape.str(), p.shape.str()));
      onnx::TensorProto* init = g_->add_initializer();
      std::string name = unique(p.name);
      init->set_name(name);
      init->set_data_type(onnx::TensorProto::FLOAT);
      for (int64_t d : p.shape.dims) init->add_dims(d);
      init->set_raw_data(std::string(reinterpret_cast<const char*>(t->data.data()), t->data.size() * sizeof(float)));
      names.push_back(name);
    }
    return names;
  }

 private:
  onnx::GraphProto* g_;
  const Network& net_;
  const Checkpoint& ckpt_;
  std::string source_;
  std::set<std::string> used_;
};

namespace {

using Attr = OnnxGraphBuilder::Attr;

std::vector<int64_t> pads_of(const std::array<int64_t, 2>& p) { return {p[0], p[1], p[0], p[1]}; }

std::string map_convolution(OnnxGraphBuilder& g, const Layer& l, const std::string& in) {
  auto k = l.spec().require_pair("kernel", 1, 1024);
  auto s = l.spec().get_pair("stride", {1, 1}, 1, 1024);
  auto p = l.spec().get_pair("pad", {0, 0}, 0, 1024);
  std::vector<std::string> inputs{in};
  for (auto& n : g.params(l)) inputs.push_back(n);
  std::string out = g.output_of(l);
  g.node("Conv", l.name(), inputs, out,
         {{"kernel_shape", {k[0], k[1]}}, {"strides", {s[0], s[1]}}, {"pads", pads_of(p)},
          {"dilations", {1, 1}}, {"group", {1}, true}});
  return out;
}

std::string map_pooling(OnnxGraphBuilder& g, const Layer& l, const std::string& in) {
  bool max = l.spec().get_enum("pool_type", "max", {"max", "avg"}) == "max";
  auto k = l.spec().require_pair("kernel", 1, 1024);
  auto s = l.spec().get_pair("stride", {1, 1}, 1, 1024);
  auto p = l.spec().get_pair("pad", {0, 0}, 0, 1024);
  std::vector<Attr> attrs{{"kernel_shape", {k[0], k[1]}}, {"strides", {s[0], s[1]}}, {"pads", pads_of(p)},
                          {"ceil_mode", {0}, true}};
  if (!max) attrs.push_back({"count_include_pad", {1}, true});
  std::string out = g.output_of(l);
  g.node(max ? "MaxPool" : "AveragePool", l.name(), {in}, out, attrs);
  return out;
}

std::string map_fully_connected(OnnxGraphBuilder& g, const Layer& l, const std::string& in) {
  std::string x = in;
  if (l.in_shape().rank() != 1) {  // MXNet's flatten=true: (N, everything else)
    x = g.unique(l.name() + "_flatten");
    g.node("Flatten", l.name() + "_flatten", {in}, x, {{"axis", {1}, true}});
  }
  std::vector<std::string> inputs{x};
  for (auto& n : g.params(l)) inputs.push_back(n);
  std::string out = g.output_of(l);
  g.node("Gemm", l.name(), inputs, out, {{"transB", {1}, true}});
  return out;
}

std::string map_activation(OnnxGraphBuilder& g, const Layer& l, const std::string& in) {
  std::string a = l.spec().get_enum("act_type", "relu", {"relu", "tanh", "sigmoid", "softrelu"});
  const char* op = a == "relu" ? "Relu" : a == "tanh" ? "Tanh" : a == "sigmoid" ? "Sigmoid" : "Softplus";
  std::string out = g.output_of(l);
  g.node(op, l.name(), {in}, out);
  return out;
}

std::string map_flatten(OnnxGraphBuilder& g, const Layer& l, const std::string& in) {
  std::string out = g.output_of(l);
  g.node("Flatten", l.name(), {in}, out, {{"axis", {1}, true}});
  return out;
}

// Inverted dropout scales while training, so inference is the identity: no node at all.
std::string map_dropout(OnnxGraphBuilder&, const Layer&, const std::string& in) { return in; }

std::string map_softmax_output(OnnxGraphBuilder& g, const Layer& l, const std::string& in) {
  std::string out = g.output_of(l);
  g.node("Softmax", l.name(), {in}, out, {{"axis", {1}, true}});
  return out;
}

}  // namespace

const OnnxMappingTable& onnx_mappings() {
  static const OnnxMappingTable table = {
      {"activation", map_activation},   {"convolution", map_convolution},
      {"dropout", map_dropout},         {"flatten", map_flatten},
      {"fully_connected", map_fully_connected}, {"pooling", map_pooling},
      {"softmax_output", map_softmax_output},
  };
  return table;
}

std::string export_onnx(const Network& net, const Checkpoint& ckpt, const std::string& source,
                        const OnnxExportSpec& spec, const OnnxMappingTable& table) {
  const auto& layers = net.layers();
  if (layers.empty() || layers.back()->type() != "softmax_output")
    throw UsageError(fmt::format("{}: the network must end in softmax_output to export class probabilities "
                                 "(its last layer is '{}')",
                                 source, layers.empty() ? std::string("none") : layers.back()->name()));
  // Refuse before building anything, naming the first layer that cannot be mapped.
  for (const auto& l : layers)
    if (!table.count(l->type()))
      throw UsageError(fmt::format("{}: layer '{}' has type '{}', which has no ONNX mapping", source, l->name(),
                                   l->type()));

  // protobuf cannot serialise a message over 2 GiB: say so before copying any weights.
  double weight_bytes = 0;
  for (const auto& l : layers)
    for (const Param& p : l->params()) weight_bytes += static_cast<double>(p.shape.numel()) * sizeof(float);
  if (weight_bytes > 2000.0 * 1024 * 1024)
    throw UsageError(fmt::format("{}: {:.0f} MiB of weights; an ONNX file holds at most 2 GiB (protobuf's limit)",
                                 source, weight_bytes / (1024 * 1024)));

  onnx::ModelProto model;
  model.set_ir_version(kOnnxIrVersion);
  model.set_producer_name("mnistctl");
  for (const auto& [k, v] : spec.metadata)
    if (k == "mnistctl_version") model.set_producer_version(v);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  for (const auto& [k, v] : spec.metadata) {
    auto* m = model.add_metadata_props();
    m->set_key(k);
    m->set_value(v);
  }

  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(spec.graph_name);
  graph->set_doc_string("input: float32 [N,C,H,W], pixels / 255 in [0, 1]; probabilities: softmax over the classes");
  set_tensor_type(graph->add_input(), "input", net.input_shape());
  OnnxGraphBuilder g(graph, net, ckpt, source);
  std::string cur = "input";
  for (const auto& l : layers) {
    if (l.get() == layers.back().get() && spec.logits) {
      g.node("Identity", "logits", {cur}, "logits");
      set_tensor_type(graph->add_output(), "logits", l->in_shape());
    }
    cur = table.at(l->type())(g, *l, cur);
  }
  if (cur != "probabilities")  // a mapping that produced no node for the last layer
    throw UsageError(fmt::format("{}: layer '{}' produced no output node", source, layers.back()->name()));
  // probabilities first: the model's main output.
  set_tensor_type(graph->add_output(), "probabilities", net.output_shape());
  if (spec.logits) graph->mutable_output()->SwapElements(0, 1);

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw RuntimeError(fmt::format("{}: the ONNX checker rejected the exported graph: {}", source, one_line(e.what())));
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream sos(&bytes);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    if (!model.SerializeToCodedStream(&cos))
      throw RuntimeError(fmt::format("{}: serialising the ONNX model failed", source));
  }
  return bytes;
}

namespace {
onnx::ModelProto parse(const std::string& bytes, const std::string& source) {
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes)) throw UsageError(fmt::format("{}: not an ONNX model (protobuf parse failed)", source));
  return m;
}
}  // namespace

void check_onnx_bytes(const std::string& bytes, const std::string& source) {
  onnx::ModelProto m = parse(bytes, source);
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    throw RuntimeError(fmt::format("{}: the ONNX checker rejected it: {}", source, one_line(e.what())));
  }
}

OnnxSummary summarize_onnx(const std::string& bytes, const std::string& source) {
  onnx::ModelProto m = parse(bytes, source);
  OnnxSummary s;
  s.ir_version = m.ir_version();
  for (const auto& o : m.opset_import())
    if (o.domain().empty()) s.opset = o.version();
  s.producer = m.producer_name() + " " + m.producer_version();
  for (const auto& n : m.graph().node()) s.ops.push_back(n.op_type());
  for (const auto& v : m.graph().input()) s.inputs.push_back(dims_str(v));
  for (const auto& v : m.graph().output()) s.outputs.push_back(dims_str(v));
  for (const auto& p : m.metadata_props()) s.metadata[p.key()] = p.value();
  return s;
}

}  // namespace mnistctl
