// What eval and predict both start from: the backend for --ctx and a checkpoint loaded onto it.
#pragma once

#include <memory>
#include <string>

#include "commands/commands.h"
#include "train/model.h"

namespace mnistctl {

// Inference batch size: the tutorial's, and what the speed comparisons use.
inline constexpr int64_t kInferenceBatch = 100;

struct OpenModel {
  std::unique_ptr<Backend> backend;  // declared first: destroyed after the model's tensors
  Model model;
};

// `checkpoint`: --checkpoint best|last|FILE (train/model.h, resolve_checkpoint).
OpenModel open_model(const RunContext& run, const std::string& model_path, const std::string& checkpoint = "");

// The test set eval and predict use: `requested` (--dataset), else the one the model was
// trained on. A dataset whose class count or image size differs from the network's is a
// UsageError naming both.
std::string test_dataset_for(const Model& m, const std::string& requested);

}  // namespace mnistctl
