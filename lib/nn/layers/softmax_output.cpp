// softmax_output (MXNet SoftmaxOutput): softmax forward, and a backward that starts from
// the labels, (softmax - onehot) / batch: the gradient of the mean cross-entropy. Under data
// parallelism `batch` is the global batch (Pass::global_rows), so the ranks' summed
// gradients are exactly the mean over it. Fusing the
// two is both faster and numerically safer than a separate log-softmax and loss.
#include "nn/registry.h"

namespace mnistctl {

class SoftmaxOutput : public Layer {
 public:
  explicit SoftmaxOutput(const LayerSpec& s) : Layer(s) { spec().check_keys({"type", "name"}); }
  Shape setup(const Shape& in) override {
    if (in.rank() != 1)
      spec().fail("", "softmax_output needs a flat input (one score per class); add fully_connected before it");
    return in;
  }
  bool is_loss() const override { return true; }
  void forward(Backend& be, const Tensor& x, Tensor& y, const Pass& pass) override {
    static const Tensor kNoLabels;
    be.softmax_xent_forward(x, pass.labels ? *pass.labels : kNoLabels, y, pass.metrics);
    labels_ = pass.labels;
    rows_ = pass.global_rows > 0 ? pass.global_rows : x.shape[0];
  }
  void backward(Backend& be, const Tensor&, const Tensor& y, const Tensor&, Tensor* dx) override {
    if (dx && labels_) be.softmax_xent_backward(y, *labels_, 1.0f / static_cast<float>(rows_), *dx);
  }

 private:
  const Tensor* labels_ = nullptr;
  int64_t rows_ = 1;
};

REGISTER_LAYER("softmax_output", SoftmaxOutput);

}  // namespace mnistctl
