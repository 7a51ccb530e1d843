// The whole run description read from one YAML file: data, network, initializer and
// training hyperparameters. The same file drives train, eval and predict; a checkpoint
// carries its resolved text, so a model is always read back with the config it was trained with.
// docs/config.md documents every field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "config/spec_node.h"
#include "core/shape.h"

namespace mnistctl {

struct DataSpec {
  std::string dataset = "mnist";  // mnist | fashion-mnist
  int64_t train_limit = 0;        // use only the first N training images (0: all)
  int64_t test_limit = 0;         // use only the first N test images (0: all)
  bool shuffle = true;            // shuffle the training set each epoch
};

struct LayerSpec {
  std::string type;  // registry name: fully_connected, convolution, ...
  std::string name;  // from the file, or "<type><index>" when absent
  SpecNode node;     // the layer's own fields, read by its factory
};

struct NetworkSpec {
  Shape input{1, 28, 28};  // per-sample shape, CHW
  std::vector<LayerSpec> layers;
};

struct InitSpec {
  std::string type = "uniform";   // uniform | normal | xavier | kaiming
  double scale = 0.01;            // uniform: U(-scale, scale)   (MXNet's default init)
  double sigma = 0.01;            // normal: N(0, sigma^2)
  std::string rnd_type = "uniform";  // xavier: uniform | gaussian
  std::string factor_type = "avg";   // xavier: avg | in | out
  double magnitude = 3.0;            // xavier: MXNet's magnitude
};

struct OptimizerSpec {
  std::string type = "sgd";  // sgd | adam
  double learning_rate = 0.1;
  double momentum = 0.0;      // sgd
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;  // adam
};

// The largest config file (or embedded config) read: configs are a few KiB; anything bigger
// is a mistake.
inline constexpr size_t kMaxConfigBytes = size_t{1} << 20;

struct ScheduleSpec {
  std::string type = "fixed";  // fixed | step | cosine
  double factor = 0.1;         // step: lr *= factor every `step_epochs`
  int64_t step_epochs = 1;
  double min_lr = 0.0;         // cosine: the floor it falls towards (reached after the last epoch)
};

// Stop when the monitored validation figure has not improved by more than min_delta for
// `patience` epochs in a row (Keras' EarlyStopping). Off unless train.early_stopping is given.
struct EarlyStoppingSpec {
  bool enabled = false;
  std::string metric = "val_loss";  // val_loss (lower is better) | val_accuracy (higher is better)
  int64_t patience = 3;
  double min_delta = 0.0;
};

struct TrainSpec {
  int64_t batch_size = 100;
  int64_t epochs = 10;
  int64_t seed = 42;
  int64_t log_interval = 100;  // batches between progress lines (0: none)
  bool deterministic = false;  // GPU: deterministic cuDNN algorithms only
  bool allow_tf32 = false;     // GPU: allow TF32 tensor-core math
  std::string precision = "fp32";  // fp32 | bf16: convolutions and fully-connected layers (backend.h)
  bool cuda_graphs = false;    // GPU: replay full-batch steps from CUDA graphs (train/step_graphs.h)
  OptimizerSpec optimizer;
  ScheduleSpec lr_schedule;
  EarlyStoppingSpec early_stopping;
  double stop_at_accuracy = 0.0;  // > 0: stop once validation accuracy reaches it (time to accuracy)
};

struct Config {
  std::string name;         // from the file's `name`, else the file's stem
  std::string source;       // file path, or "<built-in lenet.yaml>"
  std::string resolved_yaml;  // the text after --set overrides, as stored in checkpoints
  DataSpec data;
  NetworkSpec network;
  InitSpec init;
  TrainSpec train;
};

// Loads and validates a config. `overrides` are "key.path=value" strings (--set); a
// dotted path walks mappings and list indices (network.layers.0.num_filter=32).
// Throws UsageError with file:line:col for every problem found in the file itself.
Config load_config_file(const std::string& path, const std::vector<std::string>& overrides = {});
Config load_config_text(const std::string& yaml, const std::string& source,
                        const std::vector<std::string>& overrides = {});

// The dotted keys ("train.epochs", "network.layers.2.num_hidden") whose values differ
// between two loaded configs' resolved YAML, in document order; empty when they agree.
std::vector<std::string> config_differences(const Config& a, const Config& b);

// configs/lenet.yaml, compiled into the binary: the default for `mnistctl train`.
const std::string& builtin_lenet_yaml();

}  // namespace mnistctl
