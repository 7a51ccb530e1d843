#include "train/schedule.h"

#include <cmath>

namespace mnistctl {

double learning_rate_at(const TrainSpec& t, int64_t epoch) {
  const double lr = t.optimizer.learning_rate;
  const ScheduleSpec& s = t.lr_schedule;
  if (s.type == "step") return lr * std::pow(s.factor, static_cast<double>(epoch / s.step_epochs));
  if (s.type == "cosine") {
    const double pi = 3.14159265358979323846;
    return s.min_lr + (lr - s.min_lr) * (1.0 + std::cos(pi * static_cast<double>(epoch) /
                                                        static_cast<double>(t.epochs))) / 2.0;
  }
  return lr;
}

}  // namespace mnistctl
