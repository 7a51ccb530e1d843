#include "nn/network.h"

#include <fmt/format.h>

#include "core/error.h"
#include "nn/registry.h"

namespace mnistctl {
Network::Network(const NetworkSpec& spec) : input_(spec.input) {
  if (spec.layers.empty()) throw UsageError("network.layers: expected at least one layer");
  Shape shape = input_;
  try {
    (void)input_.numel();
  } catch (const Error& e) {
    throw UsageError(fmt::format("network.input: {}", e.what()));
  }
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    auto layer = LayerRegistry::create(spec.layers[i]);
    if (layer->is_loss() && i + 1 != spec.layers.size())
      layer->spec().fail("type", "softmax_output must be the last layer");
    layer->in_ = shape;
    shape = layer->setup(shape);
    // Every size the network will allocate is counted once here, checked, so that nothing
    // later (memory plan, --dry-run, bind) multiplies extents that overflow.
    try {
      (void)shape.numel();
      for (const Param& p : layer->params()) (void)p.shape.numel();
    } catch (const Error& e) {
      layer->spec().fail("", fmt::format("{} (the layer's output or parameters are too large)", e.what()));
    }
    layer->out_ = shape;
    layers_.push_back(std::move(layer));
  }
  try {
    (void)param_count();
  } catch (const Error& e) {
    throw UsageError(fmt::format("network: {}", e.what()));
  }
  need_dx_.assign(layers_.size(), false);
  bool params_below = false;
  for (size_t i = 0; i < layers_.size(); ++i) {
    need_dx_[i] = params_below;
    if (!layers_[i]->params().empty()) params_below = true;
  }
  layout_.assign(layers_.size(), Layout::nchw);  // until bind plans them
  swapped_.assign(layers_.size(), false);  // the plan (network.h): activation, then max pool
  for (size_t i = 0; i + 1 < layers_.size(); ++i)
    if (layers_[i]->is_monotonic() && layers_[i + 1]->is_max_pool()) swapped_[i] = true;  // pairs never overlap
}

int64_t Network::param_count() const {
  int64_t n = 0;
  for (const auto& l : layers_)
    for (const auto& p : l->params()) n = checked_add(n, p.shape.numel(), "network parameter count");
  return n;
}

double Network::memory_bytes(int64_t batch, Use use) const {
  // Doubles: a hostile config must not overflow the estimate meant to refuse it. Training
  // keeps 4 floats per parameter (value, grad, 2 optimizer states) and 2 per activation.
  const bool training = use == Use::training;
  double floats = (training ? 4.0 : 1.0) * static_cast<double>(param_count());
  floats += static_cast<double>(batch) * static_cast<double>(input_.numel());
  for (const auto& l : layers_)
    if (!l->is_view())
      floats += (training ? 2.0 : 1.0) * static_cast<double>(batch) * static_cast<double>(l->out_shape().numel());
  return floats * 4.0;
}

void Network::check_fits(int64_t batch, double limit, const std::string& where, Use use) const {
  double need = memory_bytes(batch, use);
  if (need <= limit) return;
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  if (use == Use::inference)
    throw UsageError(fmt::format(
        "{}: the network needs about {:.1f} GiB to run at batch size {} ({} parameters), more than the "
        "{:.1f} GiB inference budget (a quarter of this machine's memory)",
        where, need / kGiB, batch, param_count(), limit / kGiB));
  throw UsageError(fmt::format(
      "{}: the network needs about {:.1f} GiB at batch size {} ({} parameters), more than the "
      "{:.1f} GiB of memory this machine has",
      where, need / kGiB, batch, param_count(), limit / kGiB));
}

std::string Network::summary(int64_t batch) const {
  std::string s = fmt::format("{:<16} {:<16} {:<16} {:>12}\n", "layer", "type", "output", "params");
  s += fmt::format("{:<16} {:<16} {:<16} {:>12}\n", "input", "", input_.str(), "");
  for (const auto& l : layers_) {
    int64_t n = 0;
    for (const auto& p : l->params()) n += p.shape.numel();
    s += fmt::format("{:<16} {:<16} {:<16} {:>12}\n", l->name(), l->type(), l->out_shape().str(), n);
  }
  s += fmt::format("total parameters: {} ({:.2f} MB as float32)\n", param_count(),
                   param_count() * 4.0 / 1e6);
  s += fmt::format("training memory at batch {}: about {:.1f} MB\n", batch, memory_bytes(batch) / 1e6);
  return s;
}

void Network::bind(Backend& be, int64_t max_batch, bool training) {
  be_ = &be;
  max_batch_ = max_batch;
  training_ = training;
  size_t L = layers_.size();
  out_.assign(L, Tensor{});
  grad_.assign(L, Tensor{});
  cur_out_.assign(L, Tensor{});
  // All gradients live in one zeroed arena, each slice starting on a 256-byte boundary (the
  // alignment cuDNN and cuBLAS like), so data parallelism reduces them in one call.
  auto padded = [](int64_t n) { return (n + 63) / 64 * 64; };
  int64_t arena = 0;
  for (auto& l : layers_)
    for (auto& p : l->params()) arena += padded(p.shape.numel());
  grad_arena_ = training ? be.zeros(Shape{arena}) : Tensor{};
  int64_t at = 0;
  for (auto& l : layers_) {
    for (auto& p : l->params()) {
      p.value = be.empty(p.shape);
      if (training) {
        p.grad = grad_arena_.view(p.shape);
        p.grad.data = grad_arena_.data + at;
        at += padded(p.shape.numel());
      }
    }
    l->bind(be, max_batch);
  }
  plan_layouts(be, max_batch);
  pre_.assign(L, Tensor{});
  dpre_.assign(L, Tensor{});
  auto empty = [&](const Shape& s, Layout l) {
    Tensor t = be.empty(s);
    t.layout = l;
    return t;
  };
  for (size_t i = 0; i < L; ++i) {
    Shape s = batched(max_batch, layers_[i]->out_shape());
    bool grad_needed = training && i + 1 < L && need_dx_[i + 1];
    if (swapped_[i]) {  // the pair's pooled pre-activation replaces the activation's output
      Shape pooled = batched(max_batch, layers_[i + 1]->out_shape());
      pre_[i] = empty(pooled, layout_[i + 1]);  // the pooling's output, in the pair's output layout
      if (training && need_dx_[i]) dpre_[i] = empty(pooled, layout_[i + 1]);
      continue;
    }
    if (layers_[i]->is_view()) {
      // Aliases: the output is a view of the input, and so is its gradient.
      if (grad_needed && i > 0) grad_[i] = grad_[i - 1].view(s);
      continue;
    }
    out_[i] = empty(s, layout_[i]);
    if (grad_needed) grad_[i] = empty(s, layout_[i]);
  }
}

void Network::plan_layouts(const Backend& be, int64_t max_batch) {
  const size_t L = layers_.size();
  layout_.assign(L, Layout::nchw);
  input_layout_ = Layout::nchw;
  if (!be.accepts_nhwc()) return;
  using Use = Layer::LayoutUse;
  // What the first layer from j on that is not elementwise wants for its input: a layout, or
  // nullopt for either (a pooling). Past the last layer: NCHW, the output read by the caller.
  auto wanted_from = [&](size_t j) -> std::optional<Layout> {
    for (; j < L; ++j) {
      const Use u = layers_[j]->layout_use();
      if (u == Use::keeps) continue;
      if (u == Use::fixed) return Layout::nchw;
      return layers_[j]->native_layout(be, max_batch);
    }
    return Layout::nchw;
  };
  const std::optional<Layout> first = wanted_from(0);
  if (input_.rank() == 3 && input_[0] == 1 && first == Layout::nhwc) input_layout_ = Layout::nhwc;
  Layout in = input_layout_;
  for (size_t i = 0; i < L; ++i) {
    const Layer& l = *layers_[i];
    Layout out = Layout::nchw;
    if (l.layout_use() == Use::keeps) {
      out = in;
    } else if (l.layout_use() == Use::any) {
      const std::optional<Layout> own = l.native_layout(be, max_batch);
      out = wanted_from(i + 1).value_or(own.value_or(in));
      if (!own && in == Layout::nchw) out = Layout::nchw;  // pooling: nhwc out needs nhwc in
    }
    layout_[i] = out;
    in = out;
  }
}

std::vector<Param*> Network::params() {
  std::vector<Param*> ps;
  for (auto& l : layers_)
    for (auto& p : l->params()) ps.push_back(&p);
  return ps;
}

const Tensor& Network::forward(const Tensor& x, const Pass& pass) {
  int64_t n = x.shape[0];
  if (n > max_batch_) throw std::logic_error("Network::forward: batch larger than bound");
  cur_x_ = x;
  cur_x_.layout = input_layout_;  // nhwc only for a single channel: the same bytes
  const Tensor* in = &cur_x_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Shape s = batched(n, layers_[i]->out_shape());
    if (swapped_[i]) {  // pool, then the activation on the pooled tensor (network.h)
      Tensor pre = pre_[i].view(batched(n, layers_[i + 1]->out_shape()));
      cur_out_[i] = Tensor{};  // not computed
      cur_out_[i + 1] = out_[i + 1].view(pre.shape);
      call(i + 1, false, [&] { layers_[i + 1]->forward(*be_, *in, pre, pass); });
      call(i, false, [&] { layers_[i]->forward(*be_, pre, cur_out_[i + 1], pass); });
      in = &cur_out_[++i];
      continue;
    }
    if (layers_[i]->is_view()) {
      cur_out_[i] = in->view(s);
    } else {
      cur_out_[i] = out_[i].view(s);
      call(i, false, [&] { layers_[i]->forward(*be_, *in, cur_out_[i], pass); });
    }
    in = &cur_out_[i];
  }
  return cur_out_.back();
}

void Network::backward(const Tensor* dy_top) {
  int64_t n = cur_x_.shape[0];
  if (!has_loss() && !dy_top) throw std::logic_error("Network::backward: no loss layer and no dy");
  if (!training_) throw std::logic_error("Network::backward: bound for inference (no gradients)");
  Tensor dy = dy_top ? *dy_top : Tensor{};  // a loss layer ignores it
  for (size_t i = layers_.size(); i-- > 0;) {
    if (i > 0 && swapped_[i - 1]) {  // the pair (activation i - 1, pool i), in its order (network.h)
      const size_t a = i - 1;
      if (!need_dx_[a]) break;  // neither has parameters: nothing below needs a gradient
      const Tensor& x = a == 0 ? cur_x_ : cur_out_[a - 1];
      Tensor pre = pre_[a].view(cur_out_[i].shape), dpre = dpre_[a].view(cur_out_[i].shape);
      Tensor dx = grad_[a - 1].view(batched(n, layers_[a]->in_shape()));
      call(a, true, [&] { layers_[a]->backward(*be_, pre, cur_out_[i], dy, &dpre); });
      call(i, true, [&] { layers_[i]->backward(*be_, x, pre, dpre, &dx); });
      dy = dx;
      i = a;  // the loop's i-- goes on below the pair
      continue;
    }
    const Tensor& x = i == 0 ? cur_x_ : cur_out_[i - 1];
    Tensor dx;
    if (need_dx_[i]) dx = grad_[i - 1].view(batched(n, layers_[i]->in_shape()));
    if (!layers_[i]->is_view())
      call(i, true, [&] { layers_[i]->backward(*be_, x, cur_out_[i], dy, need_dx_[i] ? &dx : nullptr); });
    if (!need_dx_[i]) break;  // nothing below needs a gradient
    dy = dx;
  }
}

}  // namespace mnistctl
