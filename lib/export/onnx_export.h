// ONNX export: a trained network as a standard ONNX graph (docs/export.md).
//
// Export needs no backend: the graph is built from the checkpoint on the host (its embedded
// config gives the layers and shapes through Network, its "param/..." records the weights),
// so a checkpoint written on the GPU exports to the same bytes as on the CPU. Each layer type
// maps to ONNX operators through a table (onnx_mappings()); a type without an entry is refused
// by name. protobuf and the ONNX library stay behind this header: nothing here names them.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/network.h"
#include "train/checkpoint.h"

namespace mnistctl {

// The opset and IR version written into every model (ONNX 1.8's pairing; ONNX Runtime and the
// ONNX 1.12 checker both read it).
inline constexpr int kOnnxOpset = 13;
inline constexpr int kOnnxIrVersion = 7;

// Model metadata (ModelProto.metadata_props), written in this order.
using OnnxMetadata = std::vector<std::pair<std::string, std::string>>;

struct OnnxExportSpec {
  std::string graph_name = "mnistctl";
  bool logits = false;  // also expose the scores before the softmax as output `logits`
  OnnxMetadata metadata;
};

// Adds the ONNX nodes and initializers of one layer to the graph being built. Defined in
// onnx_export.cpp (it wraps the protobuf graph); mappings see it only through `emit`.
class OnnxGraphBuilder;

// One layer: `input` is the name of the tensor feeding it; returns the name of the tensor it
// produces (the input itself for a layer removed at export, such as dropout).
using OnnxLayerMapper = std::function<std::string(OnnxGraphBuilder& g, const Layer& layer,
                                                  const std::string& input)>;
using OnnxMappingTable = std::map<std::string, OnnxLayerMapper>;

// The built-in table: one entry per registered layer type.
const OnnxMappingTable& onnx_mappings();

// The model's serialised bytes (deterministic: the same inputs give the same bytes). Checks
// every parameter against the checkpoint, runs onnx::checker on the result. Throws UsageError
// naming the layer for a type without a mapping or a missing/misshapen parameter,
// RuntimeError when the checker rejects the graph.
std::string export_onnx(const Network& net, const Checkpoint& ckpt, const std::string& source,
                        const OnnxExportSpec& spec, const OnnxMappingTable& table = onnx_mappings());

// Runs onnx::checker::check_model on serialised bytes; throws RuntimeError naming `source`.
void check_onnx_bytes(const std::string& bytes, const std::string& source);

// What a reader of the file sees, for tests and messages: parsed back with the ONNX classes.
struct OnnxSummary {
  int64_t ir_version = 0;
  int64_t opset = 0;
  std::string producer;
  std::vector<std::string> ops;      // node op types, in graph order
  std::vector<std::string> inputs;   // graph inputs, as "name:[N,1,28,28]"
  std::vector<std::string> outputs;  // graph outputs, the same way
  std::map<std::string, std::string> metadata;
};
OnnxSummary summarize_onnx(const std::string& bytes, const std::string& source);

}  // namespace mnistctl
