// What an export starts from: a checkpoint (a file, or a run folder's last or best epoch), its
// embedded config, and the facts about the run that go into the model's metadata. Host only:
// no backend, no protobuf.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"
#include "export/onnx_export.h"
#include "train/checkpoint.h"

namespace mnistctl {

struct ExportSource {
  std::string checkpoint_path;
  Checkpoint ckpt;
  Config config;
  std::string run_dir;          // the run folder holding metrics.jsonl; empty when not found
  int64_t epoch = 0;            // finished epochs (checkpoint meta)
  int64_t batch = 0;            // batches into the next epoch (0: an end-of-epoch checkpoint)
  std::string test_accuracy;    // metrics.jsonl val_accuracy of that epoch, or "unknown"
};

// `model`: a run folder or a checkpoint file. `which`: "last", "best" or a checkpoint file
// (of that run), found by resolve_checkpoint as eval and predict find them; empty: the
// default (a run folder's last.ckpt, or the file itself). Throws UsageError naming the file
// or the option.
ExportSource open_export_source(const std::string& model, const std::string& which);

// mnistctl_version, dataset, class_names (a JSON array), epoch, test_accuracy, test_images.
OnnxMetadata export_metadata(const ExportSource& src);

// The checkpoint's place in the run as the metadata and export's summary give it: "E" after
// epoch E, "E (+B batches)" for a checkpoint saved B batches into the next epoch.
std::string epoch_text(const ExportSource& src);

// The version written into models (the project's).
const char* mnistctl_version();

}  // namespace mnistctl
