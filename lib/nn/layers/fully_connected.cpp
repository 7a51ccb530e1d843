// fully_connected (MXNet FullyConnected): y = x W^T + b with W of shape (num_hidden, in).
// Like MXNet's default flatten=true, any input is read as (batch, everything else).
#include <fmt/format.h>

#include "nn/registry.h"

namespace mnistctl {

class FullyConnected : public Layer {
 public:
  explicit FullyConnected(const LayerSpec& s) : Layer(s) {
    spec().check_keys({"type", "name", "num_hidden", "no_bias", "flatten"});
    out_features_ = spec().require_int("num_hidden", 1, 1 << 20);
    bias_ = !spec().get_bool("no_bias", false);
    if (!spec().get_bool("flatten", true))
      spec().fail("flatten", "only flatten: true is supported (the input is read as one vector per sample)");
  }

  Shape setup(const Shape& in) override {
    in_features_ = in.numel();
    declare_param("weight", {out_features_, in_features_}, false, in_features_, out_features_);
    if (bias_) declare_param("bias", {out_features_}, true, in_features_, out_features_);
    return Shape{out_features_};
  }

  void forward(Backend& be, const Tensor& x, Tensor& y, const Pass&) override {
    FcDesc d = desc(x.shape[0]);
    be.fc_forward(d, x, params()[0].value, bias_ ? &params()[1].value : nullptr, y);
  }

  void backward(Backend& be, const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) override {
    FcDesc d = desc(x.shape[0]);
    be.fc_backward_weights(d, x, dy, params()[0].grad, bias_ ? &params()[1].grad : nullptr);
    if (dx) be.fc_backward_data(d, dy, params()[0].value, *dx);
  }

 private:
  FcDesc desc(int64_t n) const {
    FcDesc d;
    d.n = n;
    d.in = in_features_;
    d.out = out_features_;
    d.bias = bias_;
    return d;
  }
  int64_t in_features_ = 0, out_features_ = 0;
  bool bias_ = true;
};

REGISTER_LAYER("fully_connected", FullyConnected);

}  // namespace mnistctl
