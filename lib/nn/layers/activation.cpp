// activation (MXNet Activation): relu, tanh, sigmoid or softrelu (log(1 + e^x)), elementwise.
#include "nn/registry.h"

namespace mnistctl {

class Activation : public Layer {
 public:
  explicit Activation(const LayerSpec& s) : Layer(s) {
    spec().check_keys({"type", "name", "act_type"});
    if (!spec().has("act_type")) spec().fail("", "missing required field 'act_type' (relu, tanh, sigmoid or softrelu)");
    std::string a = spec().get_enum("act_type", "relu", {"relu", "tanh", "sigmoid", "softrelu"});
    act_ = a == "relu" ? ActType::relu : a == "tanh" ? ActType::tanh
         : a == "sigmoid" ? ActType::sigmoid : ActType::softrelu;
  }
  Shape setup(const Shape& in) override { return in; }
  bool is_monotonic() const override { return true; }  // all four are non-decreasing
  LayoutUse layout_use() const override { return LayoutUse::keeps; }
  void forward(Backend& be, const Tensor& x, Tensor& y, const Pass&) override {
    be.act_forward(act_, x, y);
  }
  void backward(Backend& be, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override {
    if (dx) be.act_backward(act_, x, y, dy, *dx);
  }

 private:
  ActType act_;
};

REGISTER_LAYER("activation", Activation);

}  // namespace mnistctl
