#include "train/optimizer.h"

namespace mnistctl {

Optimizer::Optimizer(const OptimizerSpec& spec, Backend& be, std::vector<Param*> params)
    : spec_(spec), adam_(spec.type == "adam"), be_(be), params_(std::move(params)) {
  for (Param* p : params_) {
    s1_.push_back(adam_ || spec_.momentum > 0 ? be_.zeros(p->shape) : Tensor{});
    s2_.push_back(adam_ ? be_.zeros(p->shape) : Tensor{});
  }
}

void Optimizer::step(float lr) {
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    float wd = p.is_bias ? 0.0f : static_cast<float>(spec_.weight_decay);
    if (adam_) {
      be_.adam_update(p.value, p.grad, s1_[i], s2_[i], lr, static_cast<float>(spec_.beta1),
                      static_cast<float>(spec_.beta2), static_cast<float>(spec_.epsilon), wd, steps_);
    } else {
      be_.sgd_update(p.value, p.grad, s1_[i].data ? &s1_[i] : nullptr, lr,
                     static_cast<float>(spec_.momentum), wd);
    }
  }
}

std::vector<std::pair<std::string, Tensor*>> Optimizer::state() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (s1_[i].data) out.emplace_back(params_[i]->name + (adam_ ? ":adam_m" : ":momentum"), &s1_[i]);
    if (s2_[i].data) out.emplace_back(params_[i]->name + ":adam_v", &s2_[i]);
  }
  return out;
}

}  // namespace mnistctl
