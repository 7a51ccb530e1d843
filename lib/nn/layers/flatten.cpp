// flatten (MXNet Flatten): (N, C, H, W) -> (N, C*H*W). A view: no memory, no copy.
#include "nn/registry.h"

namespace mnistctl {

class Flatten : public Layer {
 public:
  explicit Flatten(const LayerSpec& s) : Layer(s) { spec().check_keys({"type", "name"}); }
  Shape setup(const Shape& in) override { return Shape{in.numel()}; }
  bool is_view() const override { return true; }
  // The network hands out views, so these are never asked to move data.
  void forward(Backend&, const Tensor&, Tensor&, const Pass&) override {}
  void backward(Backend&, const Tensor&, const Tensor&, const Tensor&, Tensor*) override {}
};

REGISTER_LAYER("flatten", Flatten);

}  // namespace mnistctl
