// Learning-rate schedules, evaluated once per epoch (0-based):
//   fixed:  lr
//   step:   lr * factor^floor(epoch / step_epochs)
//   cosine: min_lr + (lr - min_lr) * (1 + cos(pi * epoch / (epochs - 1))) / 2
//           (lr in the first epoch, min_lr in the last)
#pragma once

#include <cstdint>

#include "config/config.h"

namespace mnistctl {

double learning_rate_at(const TrainSpec& train, int64_t epoch);

}  // namespace mnistctl
