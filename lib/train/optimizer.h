// Optimizers over every parameter of a network: SGD (momentum, weight decay) and Adam.
// The update runs in the backend, in place, with no host round trip. As in MXNet, weight
// decay applies to weights only, not to biases.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "nn/layer.h"

namespace mnistctl {

class Optimizer {
 public:
  Optimizer(const OptimizerSpec& spec, Backend& be, std::vector<Param*> params);
  // One update of every parameter from its gradient at learning rate `lr`.
  void step(float lr);
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }
  // The state tensors for checkpoints, named "<param>:<slot>" (momentum, adam_m, adam_v).
  std::vector<std::pair<std::string, Tensor*>> state();

 private:
  OptimizerSpec spec_;
  bool adam_;  // else SGD; decided once, not per parameter per step
  Backend& be_;
  std::vector<Param*> params_;
  std::vector<Tensor> s1_, s2_;
  int64_t steps_ = 0;
};

}  // namespace mnistctl
