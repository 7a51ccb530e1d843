// A trained model read back from a checkpoint (or a run folder), bound to a backend, and
// the inference loop that eval and predict share.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "nn/network.h"
#include "train/checkpoint.h"

namespace mnistctl {

// Which checkpoint file --model and --checkpoint name. `which` empty: a run folder means its
// last.ckpt, anything else is a checkpoint file. `which` "best" or "last": that checkpoint of
// the run folder `run_dir_or_file`. Any other `which` is a file: inside the run folder when
// it is a relative path found there (checkpoints/epoch-003.ckpt), else as given (then
// `run_dir_or_file` may be empty). Throws UsageError naming what is missing.
std::string resolve_checkpoint(const std::string& run_dir_or_file, const std::string& which = "");

// Every parameter of the (unbound) network must be in the checkpoint with its shape.
void check_params(const Network& net, const Checkpoint& ckpt, const std::string& source);
// Copies the checkpoint's "param/<name>" tensors into the bound network (check_params first).
void load_params(Network& net, const Checkpoint& ckpt, const std::string& source);

// What eval and predict may bind for one model: a quarter of the machine's memory.
double inference_budget_bytes();

struct Model {
  std::string path;  // the checkpoint file
  Config config;
  std::unique_ptr<Network> net;
};

// Reads the checkpoint (bounded by its size on disk), builds the network from its embedded
// config as shapes only, checks every parameter against the checkpoint's tensor table and
// the inference memory against inference_budget_bytes(), and only then binds it (for
// inference: no gradients) and copies the weights in.
Model load_model(const std::string& run_dir_or_file, Backend& be, int64_t max_batch,
                 const std::string& which = "");

// Runs the network over `count` uint8 images (sample_size bytes each, already the
// network's input size) in batches and hands each batch's probabilities (n x classes, on
// the host) to `sink(first, n, probs)`. The images are handed over to the backend
// (adopt_bytes), so they are never held twice.
using ProbSink = std::function<void(int64_t first, int64_t n, const float* probs)>;
void run_inference(Network& net, Backend& be, std::vector<uint8_t>&& images, int64_t count,
                   int64_t sample_size, int64_t batch, const ProbSink& sink);

}  // namespace mnistctl
