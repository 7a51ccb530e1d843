// convolution (MXNet Convolution): 2-D cross-correlation of a CHW input with num_filter
// KCRS filters, zero padding, optional bias. Output extent floor((H + 2p - k) / s) + 1.
#include <fmt/format.h>

#include "nn/registry.h"

namespace mnistctl {

class Convolution : public Layer {
 public:
  explicit Convolution(const LayerSpec& s) : Layer(s) {
    spec().check_keys({"type", "name", "kernel", "num_filter", "stride", "pad", "no_bias"});
    kernel_ = spec().require_pair("kernel", 1, 1024);
    filters_ = spec().require_int("num_filter", 1, 1 << 16);
    stride_ = spec().get_pair("stride", {1, 1}, 1, 1024);
    pad_ = spec().get_pair("pad", {0, 0}, 0, 1024);
    bias_ = !spec().get_bool("no_bias", false);
  }

  Shape setup(const Shape& in) override {
    if (in.rank() != 3)
      spec().fail("", fmt::format("convolution needs a CxHxW input, got {}", in.str()));
    d_.c = in[0];
    d_.h = in[1];
    d_.w = in[2];
    d_.k = filters_;
    d_.kh = kernel_[0];
    d_.kw = kernel_[1];
    d_.sh = stride_[0];
    d_.sw = stride_[1];
    d_.ph = pad_[0];
    d_.pw = pad_[1];
    d_.bias = bias_;
    if (d_.h + 2 * d_.ph < d_.kh || d_.w + 2 * d_.pw < d_.kw)
      spec().fail("kernel", fmt::format("a {}x{} kernel does not fit the {}x{} input (padding {}x{})",
                                        d_.kh, d_.kw, d_.h, d_.w, d_.ph, d_.pw));
    int64_t fan_in = d_.c * d_.kh * d_.kw;
    declare_param("weight", {d_.k, d_.c, d_.kh, d_.kw}, false, fan_in, d_.k * d_.kh * d_.kw);
    if (bias_) declare_param("bias", {d_.k}, true, fan_in, d_.k * d_.kh * d_.kw);
    return Shape{d_.k, d_.oh(), d_.ow()};
  }

  LayoutUse layout_use() const override { return LayoutUse::any; }
  std::optional<Layout> native_layout(const Backend& be, int64_t batch) const override {
    ConvDesc d = d_;
    d.n = batch;
    return be.preferred_layout(d);
  }

  void forward(Backend& be, const Tensor& x, Tensor& y, const Pass&) override {
    be.conv_forward(desc(x), x, params()[0].value, bias_ ? &params()[1].value : nullptr, y);
  }

  void backward(Backend& be, const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) override {
    ConvDesc d = desc(x);
    be.conv_backward_weights(d, x, dy, params()[0].grad, bias_ ? &params()[1].grad : nullptr);
    if (dx) be.conv_backward_data(d, dy, params()[0].value, *dx);
  }

 private:
  ConvDesc desc(const Tensor& x) const {
    ConvDesc d = d_;
    d.n = x.shape[0];
    return d;
  }
  std::array<int64_t, 2> kernel_{}, stride_{}, pad_{};
  int64_t filters_ = 0;
  bool bias_ = true;
  ConvDesc d_;
};

REGISTER_LAYER("convolution", Convolution);

}  // namespace mnistctl
