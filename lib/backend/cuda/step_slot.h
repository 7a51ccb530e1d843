// The device-resident scalars of a captured training step (Backend::capture, StepScalars).
//
// A CUDA graph bakes every kernel argument in at capture. The few scalars that change from
// step to step are read instead, by the *_slot kernel variants, from one small struct in
// device memory that each replay overwrites (a copy queued on the stream just before the
// graph launch). Outside a capture the by-value kernels run, exactly as without graphs.
// Adam's bias corrections are computed on the host per replay with the formula
// adam_update uses, so a replay feeds the kernel the very floats an eager step would.
#pragma once

#include <cstdint>

namespace mnistctl::cuda {

struct DeviceStepSlot {
  int64_t first = 0;  // gather_batch
  uint64_t step = 0;  // dropout: counter = step * step_range + offset
  float lr = 0.0f;    // sgd, adam
  float bc1 = 1.0f, bc2 = 1.0f;  // adam: 1 - beta1^t, 1 - beta2^t
};

}  // namespace mnistctl::cuda
