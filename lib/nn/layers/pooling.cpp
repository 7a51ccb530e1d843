// pooling (MXNet Pooling): max or average over kernel windows, floor ("valid") output
// extent, average counting the padding. Max pooling keeps a backend-chosen workspace
// (argmax indices on oneDNN) from forward for backward.
#include <fmt/format.h>

#include "nn/registry.h"

namespace mnistctl {

class Pooling : public Layer {
 public:
  explicit Pooling(const LayerSpec& s) : Layer(s) {
    spec().check_keys({"type", "name", "pool_type", "kernel", "stride", "pad"});
    d_.type = spec().get_enum("pool_type", "max", {"max", "avg"}) == "max" ? PoolType::max
                                                                           : PoolType::avg;
    auto k = spec().require_pair("kernel", 1, 1024);
    auto st = spec().get_pair("stride", {1, 1}, 1, 1024);
    auto p = spec().get_pair("pad", {0, 0}, 0, 1024);
    d_.kh = k[0];
    d_.kw = k[1];
    d_.sh = st[0];
    d_.sw = st[1];
    d_.ph = p[0];
    d_.pw = p[1];
    if (d_.ph >= d_.kh || d_.pw >= d_.kw)
      spec().fail("pad", "padding must be smaller than the kernel");
  }

  Shape setup(const Shape& in) override {
    if (in.rank() != 3) spec().fail("", fmt::format("pooling needs a CxHxW input, got {}", in.str()));
    d_.c = in[0];
    d_.h = in[1];
    d_.w = in[2];
    if (d_.h + 2 * d_.ph < d_.kh || d_.w + 2 * d_.pw < d_.kw)
      spec().fail("kernel", fmt::format("a {}x{} window does not fit the {}x{} input", d_.kh, d_.kw,
                                        d_.h, d_.w));
    return Shape{d_.c, d_.oh(), d_.ow()};
  }

  bool is_max_pool() const override { return d_.type == PoolType::max; }
  LayoutUse layout_use() const override { return LayoutUse::any; }

  void bind(Backend& be, int64_t max_batch) override {
    PoolDesc d = d_;
    d.n = max_batch;
    ws_ = be.pool_workspace(d);
  }

  void forward(Backend& be, const Tensor& x, Tensor& y, const Pass&) override {
    be.pool_forward(desc(x), x, y, ws_);
  }

  void backward(Backend& be, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override {
    if (dx) be.pool_backward(desc(x), x, y, dy, ws_, *dx);
  }

 private:
  PoolDesc desc(const Tensor& x) const {
    PoolDesc d = d_;
    d.n = x.shape[0];
    return d;
  }
  PoolDesc d_;
  Buffer ws_;
};

REGISTER_LAYER("pooling", Pooling);

}  // namespace mnistctl
