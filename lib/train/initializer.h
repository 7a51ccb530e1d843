// Parameter initializers (MXNet's names and formulas). Weights are drawn on the host from
// Pcg32 in parameter order and uploaded, so every backend starts from identical weights.
// Biases start at 0, as MXNet's default initializer does.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "nn/layer.h"

namespace mnistctl {

// uniform:  U(-scale, scale)                       (MXNet's default, scale 0.01)
// normal:   N(0, sigma^2)
// xavier:   s = sqrt(magnitude / f), f = fan_in, fan_out or their mean (factor_type);
//           U(-s, s) or N(0, s^2) (rnd_type)        (MXNet's Xavier)
// kaiming:  N(0, 2 / fan_in)                        (He et al. 2015, for ReLU)
void initialize_params(Backend& be, const std::vector<Param*>& params, const InitSpec& init,
                       uint64_t seed);

}  // namespace mnistctl
