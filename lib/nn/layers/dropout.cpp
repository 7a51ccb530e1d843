// dropout (MXNet Dropout): inverted dropout in training (kept units scaled by 1/(1-p)),
// the identity otherwise. Masks come from a counter hash of (seed, batch counter, index),
// so they are the same on every backend and a resumed run repeats them exactly.
#include "nn/registry.h"

namespace mnistctl {

class Dropout : public Layer {
 public:
  explicit Dropout(const LayerSpec& s) : Layer(s) {
    spec().check_keys({"type", "name", "p"});
    p_ = static_cast<float>(spec().get_double("p", 0.5, 0.0, 0.999));
    name_hash_ = name_hash();
  }
  Shape setup(const Shape& in) override { return in; }
  void bind(Backend& be, int64_t max_batch) override {
    mask_ = be.empty(batched(max_batch, out_shape()));
  }
  void forward(Backend& be, const Tensor& x, Tensor& y, const Pass& pass) override {
    if (!pass.train || p_ == 0.0f) {
      be.copy(x, y);
      active_ = false;
      return;
    }
    Tensor m = mask_.view(x.shape);
    // Distinct masks per layer (its name is folded into the seed) and per step (each step
    // owns a full batch's range of counters, also when its batch is the smaller last one).
    // Under data parallelism the step's range is the global batch's and this rank's rows
    // start at row0 of it (Pass), so the masks are those a single process would draw.
    const int64_t per_sample = out_shape().numel();
    const uint64_t step_range = pass.global_max_rows > 0 ? static_cast<uint64_t>(pass.global_max_rows * per_sample)
                                                         : static_cast<uint64_t>(mask_.numel());
    // counter = pass.counter * step_range + row0 * per_sample, with the step apart so that
    // a captured step (backend.h, StepScalars) takes it from each replay.
    be.dropout_forward_step(p_, pass.seed ^ name_hash_, pass.counter, step_range,
                            static_cast<uint64_t>(pass.row0 * per_sample), x, y, m);
    active_ = true;
  }
  void backward(Backend& be, const Tensor&, const Tensor&, const Tensor& dy, Tensor* dx) override {
    if (!dx) return;
    if (active_) {
      Tensor m = mask_.view(dy.shape);
      be.mul(dy, m, *dx);
    } else {
      be.copy(dy, *dx);
    }
  }

 private:
  // FNV-1a: a hash whose value is specified, unlike std::hash.
  uint64_t name_hash() const {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : name()) h = (h ^ c) * 1099511628211ull;
    return h;
  }
  uint64_t name_hash_ = 0;
  float p_ = 0.5f;
  Tensor mask_;
  bool active_ = false;
};

REGISTER_LAYER("dropout", Dropout);

}  // namespace mnistctl
