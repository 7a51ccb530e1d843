// The training loop: epochs of shuffled batches through forward, backward and the
// optimizer, a validation pass on the test set after each epoch, Speedometer lines,
// metrics.jsonl/.csv, a checkpoint per epoch and the best one, early stopping, Ctrl-C handling
// and exact resume. The run folder's files are handled by train/run_folder.h.
//
// One step on any backend: gather the batch from the uint8 dataset already in backend
// memory -> forward -> softmax cross-entropy (metrics summed on the device) -> backward ->
// optimizer update in place. Nothing crosses between host and device inside a step; the
// metric sums are read only when a line is logged.
//
// Resume is exact because all randomness is a pure function of (seed, epoch) for shuffles
// and (seed, step) for dropout, and a checkpoint holds the weights, optimizer state, step,
// the position inside the epoch and the epoch's running metric sums, plus the run's
// bookkeeping (training time so far, best validation accuracy, early-stopping state).
#pragma once

#include <string>

#include "backend/backend.h"
#include "config/config.h"
#include "nn/network.h"

namespace mnistctl {

class Collective;  // train/collective.h

struct TrainRequest {
  Config config;
  std::string ctx = "cpu";
  BackendOptions backend;
  std::string data_root;  // "" -> default_data_root()
  std::string out_dir;
  bool resume = false;
  bool overwrite = false;  // a fresh run may replace a run already in out_dir
  // Data parallelism (lib/dist): this process's rank among those training one model. null:
  // a single process. Rank 0 alone writes the run folder and prints.
  Collective* collective = nullptr;
};

// Returns kExitOk (all epochs done, or stopped by train.early_stopping or
// train.stop_at_accuracy), or 128 + the signal after SIGINT (130, Ctrl-C) or SIGTERM (143):
// the current batch finishes and a checkpoint is written (nothing is written when the
// signal came before training started). A fresh run into a folder holding a run is refused
// (UsageError) unless `overwrite`.
int train_network(const TrainRequest& req);

// What a config must satisfy before any data or backend is touched (and what --dry-run
// checks): a softmax_output at the end, an input and output that fit the dataset's images
// and classes (from the catalog), and memory for the batch size.
void check_trainable(const Config& cfg, const Network& net);

}  // namespace mnistctl
