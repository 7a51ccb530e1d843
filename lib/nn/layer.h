// The Layer interface. A layer knows its shapes and parameters and calls Backend ops; it
// never knows which backend runs it. Shapes here are per sample (CHW or a flat vector);
// tensors passed to forward/backward carry the batch as their outermost extent.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"

namespace mnistctl {

// A learnable tensor and its gradient, both in backend memory.
struct Param {
  std::string name;     // "<layer>.weight" or "<layer>.bias"
  Shape shape;
  bool is_bias = false;
  int64_t fan_in = 0;   // inputs feeding one output (for xavier / kaiming)
  int64_t fan_out = 0;  // outputs fed by one input
  Tensor value, grad;
};

// What a forward pass needs beyond its input.
struct Pass {
  bool train = false;
  uint64_t seed = 0;        // dropout masks: hash of (seed, counter)
  uint64_t counter = 0;     // advanced per batch by the trainer
  const Tensor* labels = nullptr;  // for the loss layer; may be null (prediction)
  Tensor* metrics = nullptr;       // loss/accuracy sums (backend.h MetricSlot), may be null
  // Data parallelism (lib/dist): this process holds rows [row0, row0 + n) of a global batch
  // of `global_rows` rows (at most `global_max_rows`). The loss is the mean over the global
  // batch, and dropout masks are those of the global row, so N processes compute what one
  // would. 0 (the default): the batch is this tensor's own rows.
  int64_t row0 = 0, global_rows = 0, global_max_rows = 0;
};

class Layer {
 public:
  explicit Layer(const LayerSpec& spec) : spec_(spec) {}
  virtual ~Layer() = default;

  const std::string& name() const { return spec_.name; }
  const std::string& type() const { return spec_.type; }
  const SpecNode& spec() const { return spec_.node; }

  // Shape inference, once, before any memory exists: returns the per-sample output shape and
  // declares parameters with declare_param(). A shape that doesn't fit is a UsageError
  // pointing at the layer's YAML (spec().fail).
  virtual Shape setup(const Shape& in) = 0;

  // Per-batch workspace (pooling indices...), made when the network is bound to a backend.
  virtual void bind(Backend&, int64_t /*max_batch*/) {}

  virtual void forward(Backend& be, const Tensor& x, Tensor& y, const Pass& pass) = 0;
  // dx == nullptr: no layer below needs it (the first layer skips backward-data).
  // Parameter gradients go to params()[i].grad (overwritten, not accumulated).
  virtual void backward(Backend& be, const Tensor& x, const Tensor& y, const Tensor& dy,
                        Tensor* dx) = 0;

  // Output is a view of the input (flatten): no memory, no copy.
  virtual bool is_view() const { return false; }
  // The fused softmax + cross-entropy: backward ignores dy and starts from the labels.
  virtual bool is_loss() const { return false; }
  // An elementwise, non-decreasing function (relu, tanh, sigmoid, softrelu): it commutes with
  // a max pooling after it, which the network uses (see network.h, "the plan").
  virtual bool is_monotonic() const { return false; }
  // A max pooling (the windows' maximum, padding never chosen).
  virtual bool is_max_pool() const { return false; }

  // How the layer treats the layout of its activations (tensor.h), for the network's
  // layout plan (network.h). fixed: NCHW in and out (the default; fully connected, flatten,
  // dropout, softmax). keeps: elementwise, the output in the input's layout (activation).
  // any: either layout in, and writes the one its output is given (convolution; pooling,
  // whose nhwc output needs an nhwc input).
  enum class LayoutUse { fixed, keeps, any };
  virtual LayoutUse layout_use() const { return LayoutUse::fixed; }
  // For an `any` layer: the layout it runs in natively on `be` at this batch size, or
  // nullopt when it has none (pooling converts for free).
  virtual std::optional<Layout> native_layout(const Backend& /*be*/, int64_t /*batch*/) const {
    return std::nullopt;
  }

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  const Shape& in_shape() const { return in_; }
  const Shape& out_shape() const { return out_; }

 protected:
  void declare_param(const std::string& suffix, const Shape& shape, bool is_bias, int64_t fan_in,
                     int64_t fan_out) {
    Param p;
    p.name = name() + "." + suffix;
    p.shape = shape;
    p.is_bias = is_bias;
    p.fan_in = fan_in;
    p.fan_out = fan_out;
    params_.push_back(std::move(p));
  }

 private:
  friend class Network;
  LayerSpec spec_;
  std::vector<Param> params_;
  Shape in_, out_;
};

}  // namespace mnistctl
