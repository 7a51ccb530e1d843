// A network: the layers built from the YAML through the registry, in order, with every
// shape inferred before any memory exists (so --dry-run and the memory check need no
// backend), then bound to a backend that holds parameters, activations and gradients.
//
// Memory plan: one output buffer per layer and one gradient buffer per layer output that a
// backward pass writes, all sized for the largest batch and used through views for a
// smaller last batch. View layers (flatten) alias their input. No gradient is made for the
// input, nor for layers below the first one with parameters (no backward-data there).
//
// The plan: a monotonic activation followed by a max pooling (LeNet's tanh -> pool) runs as
// pool -> activation. max(f(a), f(b)) = f(max(a, b)) for a non-decreasing f, so the output is
// the same, while the activation, forward and backward, touches a quarter of the elements
// (for a 2x2 window) and the activation's full-size output and its gradient are never made:
// the pair keeps one pooled pre-activation buffer and its gradient instead. The gradient
// goes to the window's maximum of the pre-activation. Where two different inputs round to
// the same activation value (tanh saturating to 1) that is the larger input, not the first
// of the tied activations: a valid subgradient either way, and one without ties elsewhere.
// Each layer still makes its own calls (the activation's on the pooled tensor), so
// LayerObserver and the per-layer bench rows stay per layer; the activation's output
// (cur_out_) is not computed.
//
// The layout plan: on a backend that accepts channels-last tensors (Backend::accepts_nhwc,
// the CPU's oneDNN), each activation buffer gets the layout its producer and its consumer
// both run in, so that no op reorders at its boundary. A layer that can write either layout
// (Layer::LayoutUse::any: convolution, pooling) writes the layout the next layer that is not
// elementwise wants for its input: a convolution its native one (Backend::preferred_layout),
// a pooling none in particular (then the producer's own: a convolution's native layout, a
// pooling's input layout), anything else, and the network's output, NCHW. Pooling writes
// nhwc only from an nhwc input; elementwise layers keep their input's layout. For LeNet on
// the CPU: conv1, pool1, tanh1 and conv2 write nhwc, pool2 turns it back into the NCHW that
// flatten and fully connected read. A single-channel input is declared nhwc when its first
// convolution wants that (the bytes are the same). Layers never see the plan: their tensors
// carry it (Tensor::layout).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/layer.h"

namespace mnistctl {

// Sees each layer's forward and backward call from outside (`mnistctl bench` times them).
// begin/end bracket exactly one layer call; view layers make none.
class LayerObserver {
 public:
  virtual ~LayerObserver() = default;
  virtual void begin(size_t layer, bool backward) = 0;
  virtual void end(size_t layer, bool backward) = 0;
};

class Network {
 public:
  // Builds and shape-checks; throws UsageError pointing at the YAML on any misfit.
  explicit Network(const NetworkSpec& spec);

  const Shape& input_shape() const { return input_; }
  const Shape& output_shape() const { return layers_.back()->out_shape(); }
  bool has_loss() const { return layers_.back()->is_loss(); }
  int64_t num_classes() const { return output_shape().numel(); }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  int64_t param_count() const;
  // What a memory estimate is for: training holds parameters, gradients, optimizer state (up
  // to two tensors per parameter), activations and their gradients; an inference binding
  // holds parameters, the input and every activation, no gradients.
  enum class Use { training, inference };
  // Bytes of backend memory for `use` at this batch size.
  double memory_bytes(int64_t batch, Use use = Use::training) const;
  // Throws UsageError when memory_bytes(batch, use) exceeds `limit` bytes (for inference,
  // the limit is the inference budget).
  void check_fits(int64_t batch, double limit, const std::string& where, Use use = Use::training) const;
  // The --dry-run table: each layer's output shape and parameter count, and the totals.
  std::string summary(int64_t batch) const;

  // Allocates parameters (uninitialised) and activations on `be`, and for training the
  // parameter and activation gradients; inference (training = false) binds none of those.
  void bind(Backend& be, int64_t max_batch, bool training = true);
  Backend& backend() const { return *be_; }
  std::vector<Param*> params();
  // Every parameter gradient, contiguous (each Param::grad is a slice of it; the padding
  // between slices stays zero): what data parallelism allreduces in one call.
  Tensor& grad_arena() { return grad_arena_; }

  // Runs every layer on x (n x input_shape). Returns the last layer's output (n x classes),
  // a view valid until the next call.
  const Tensor& forward(const Tensor& x, const Pass& pass);
  // Backward through every layer after forward(); fills the parameter gradients. A loss
  // layer on top starts from the labels given to forward(); otherwise `dy_top` (the
  // gradient of the output, n x output_shape) is required (gradient checks use this).
  void backward(const Tensor* dy_top = nullptr);

  // The layout plan's choice (see the top) for layer i's output, and for the input, once bound.
  Layout output_layout(size_t i) const { return layout_[i]; }
  Layout input_layout() const { return input_layout_; }

  // Whether backward() computes layer i's input gradient (backward-data) too.
  bool computes_input_grad(size_t i) const { return need_dx_[i]; }
  // nullptr (the default) observes nothing.
  void set_observer(LayerObserver* o) { observer_ = o; }

 private:
  Shape input_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<bool> need_dx_;  // layer i must produce the gradient of its input
  std::vector<bool> swapped_;  // layer i is an activation run after the max pooling i + 1
  std::vector<Tensor> pre_, dpre_;  // per swapped pair: the pooled pre-activation and its gradient
  std::vector<Layout> layout_;      // the layout plan: per layer output (see the top)
  Layout input_layout_ = Layout::nchw;
  Backend* be_ = nullptr;
  int64_t max_batch_ = 0;
  bool training_ = true;
  std::vector<Tensor> out_, grad_;  // full-size buffers, per layer output
  std::vector<Tensor> cur_out_;     // views for the current batch
  Tensor cur_x_;
  Tensor grad_arena_;
  LayerObserver* observer_ = nullptr;

  void plan_layouts(const Backend& be, int64_t max_batch);

  // One layer call, bracketed for the observer.
  template <class F>
  void call(size_t layer, bool backward, const F& f) {
    if (observer_) observer_->begin(layer, backward);
    f();
    if (observer_) observer_->end(layer, backward);
  }
};

}  // namespace mnistctl
