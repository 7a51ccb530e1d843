// Learning-rate schedules, evaluated once per epoch (0-based):
//   fixed:  lr
//   step:   lr * factor^floor(epoch / step_epochs)
//   cosine: min_lr + (lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2
//           (PyTorch's CosineAnnealingLR with T_max = epochs: lr in the first epoch, falling
//           towards min_lr, which it would reach after the last one, so no epoch is wasted)
#pragma once

#include <cstdint>

#include "config/config.h"

namespace mnistctl {

double learning_rate_at(const TrainSpec& train, int64_t epoch);

}  // namespace mnistctl
