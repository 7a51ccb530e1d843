// Reads what a run folder holds, for `mnistctl report`, without needing the run to be
// finished: config.yaml, metrics.jsonl (possibly still being written), and which checkpoint
// there is (best.ckpt preferred, then last.ckpt) with its meta.
//
// metrics.jsonl is read tolerantly where a live or interrupted run makes it ragged, strictly
// where it is damaged:
//  * a last line without its newline that does not parse is a record cut mid-write: skipped,
//    with a note;
//  * any other line that is not a JSON object is an error (UsageError naming file:line);
//  * unknown record types and unknown fields are ignored (other writers add their own); a
//    known field that is absent or null reads as NaN; a known field of the wrong type is an
//    error naming file:line:field;
//  * a repeated epoch record (a resumed run) replaces the earlier one.
// The file is refused above kMaxMetricsBytes before it is read.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace mnistctl {

struct BatchRecord {
  int64_t epoch = 0, batch = 0;  // 1-based epoch; batches done within it
  double images_per_s = 0, train_accuracy = 0, loss = 0;  // NaN when absent
};

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double time_s = 0, images_per_s = 0, train_accuracy = 0, loss = 0;
  double val_accuracy = 0, val_loss = 0, val_time_s = 0, lr = 0;  // NaN when absent
};

struct RunData {
  std::string dir;
  std::string config_yaml;               // config.yaml's text ("" when absent)
  std::optional<Config> config;          // parsed, when it parses
  std::string config_error;              // why it did not
  std::vector<BatchRecord> batches;      // in file order
  std::vector<EpochRecord> epochs;       // sorted by epoch, one per epoch
  std::vector<std::string> notes;        // things the reader skipped, for the report to show
  std::string checkpoint;                // best.ckpt, else last.ckpt, else ""
  std::string checkpoint_kind;           // "best" | "last" | ""
  std::map<std::string, std::string> checkpoint_meta;
  int64_t batches_per_epoch = 0;         // 0 when unknown
  int64_t planned_epochs = 0;            // from the config; 0 when unknown
  // From the "summary" record train writes when it ends (absent while training or after an
  // interruption): "epochs", "early_stopping" or "stop_at_accuracy", and the time to accuracy.
  std::string stopped_by;
  double target_accuracy = 0;            // train.stop_at_accuracy (0: none)
  double time_to_accuracy_s = -1;        // < 0: not reached (or no target)
  int64_t time_to_accuracy_epoch = 0;

  // Epoch x-coordinate of a batch record: (epoch - 1) + batch / batches_per_epoch, so the
  // batch-level curves run on continuously across epochs.
  double batch_x(const BatchRecord& b) const;
  // "complete", "interrupted or still training", "not started"
  std::string state() const;
};

constexpr int64_t kMaxMetricsBytes = int64_t(256) << 20;

// Throws UsageError when `dir` is not a run folder (neither config.yaml nor metrics.jsonl)
// or metrics.jsonl is damaged as described above.
RunData read_run(const std::string& dir);

// Parses metrics.jsonl text into `run` (exposed for tests); `source` names it in errors.
void parse_metrics(const std::string& text, const std::string& source, RunData& run);

}  // namespace mnistctl
