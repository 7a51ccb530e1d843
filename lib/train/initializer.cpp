#include "train/initializer.h"

#include <cmath>

#include "core/rng.h"

namespace mnistctl {

void initialize_params(Backend& be, const std::vector<Param*>& params, const InitSpec& init,
                       uint64_t seed) {
  Pcg32 rng(seed, /*stream=*/0x494e4954u);  // "INIT": independent of the shuffle streams
  for (Param* p : params) {
    std::vector<float> host(static_cast<size_t>(p->shape.numel()), 0.0f);
    if (!p->is_bias) {
      if (init.type == "uniform") {
        float s = static_cast<float>(init.scale);
        for (float& v : host) v = rng.uniform(-s, s);
      } else if (init.type == "normal") {
        for (float& v : host) v = static_cast<float>(init.sigma) * rng.normal();
      } else if (init.type == "xavier") {
        double f = init.factor_type == "in"    ? p->fan_in
                   : init.factor_type == "out" ? p->fan_out
                                               : (p->fan_in + p->fan_out) / 2.0;
        float s = static_cast<float>(std::sqrt(init.magnitude / f));
        if (init.rnd_type == "gaussian")
          for (float& v : host) v = s * rng.normal();
        else
          for (float& v : host) v = rng.uniform(-s, s);
      } else {  // kaiming
        float s = static_cast<float>(std::sqrt(2.0 / static_cast<double>(p->fan_in)));
        for (float& v : host) v = s * rng.normal();
      }
    }
    be.upload(p->value, host.data());
  }
}

}  // namespace mnistctl
