// The run folder: every file one training run writes, and the rules that keep a run from
// being lost (docs/checkpoint.md, "The run folder").
//
//   DIR/config.yaml                 the resolved config
//   DIR/metrics.jsonl               one JSON object per line: batch, epoch and summary records
//   DIR/metrics.csv                 one row per epoch, header once (as Keras' CSVLogger)
//   DIR/last.ckpt                   the newest checkpoint
//   DIR/best.ckpt                   the end-of-epoch checkpoint with the best validation accuracy
//   DIR/checkpoints/epoch-NNN.ckpt  one per finished epoch
//
// A fresh run into a folder that holds a run is refused unless --overwrite is given, and
// even then the old files are removed only by begin(), which the trainer calls once the
// config, data and backend are ready: a run that fails before training deletes nothing.
// The trainer decides what to write and when; this class decides where and how, so that
// whatever guards the folder (a lock, one writer among many processes) has one place to go.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/fs.h"

namespace mnistctl {

// The default run folder: runs/<config name>-<dataset> (runs/lenet-mnist,
// runs/mlp-fashion-mnist), or runs/<config name> when the name already ends in the dataset.
std::string default_run_dir(const Config& cfg);

// The first line of the config.yaml a run writes: it marks the file as the run's own, so that
// a user's config.yaml in the folder is never replaced or removed.
inline constexpr const char* kRunConfigMarker = "# mnistctl train: the resolved config of this run\n";
// The marker `mnistctl report` puts in every page, so that a previous report (which report
// may replace, and --overwrite removes with its run) is told from any other file.
inline constexpr const char* kReportMarker = "<meta name=\"generator\" content=\"mnistctl report\">";

// The files of a run that `dir` holds, relative to it (config.yaml, metrics.jsonl,
// metrics.csv, last.ckpt, best.ckpt, report.html, checkpoints/*.ckpt); empty when it holds
// none. Only files a run wrote count (told by their first bytes: the checkpoint magic, the
// metrics' first record or header, the report's and config's markers); a folder standing
// where a run keeps a file is listed too.
std::vector<std::string> run_files(const std::string& dir);

// Files at those names that a run did not write (a user's config.yaml or report.html):
// train neither replaces nor removes them, and stops.
std::vector<std::string> foreign_files(const std::string& dir);

// Throws UsageError (exit 2) naming the file when `dir` holds a file where a run writes one
// that a run did not write (even with `overwrite`), and naming the folder and the ways out
// when `dir` holds a run and `overwrite` is false. Deletes nothing.
void check_fresh_run(const std::string& dir, bool overwrite);

// The run's checkpoints/epoch-NNN.ckpt of the highest epoch, as a path under `dir`; empty
// when it has none. Where last.ckpt is missing beside one (its write failed: a full disk),
// that is the run's work, which messages name rather than offer --overwrite.
std::string newest_epoch_checkpoint(const std::string& dir);

// The folder directly under `parent` whose last.ckpt was written most recently; empty when
// there is none.
std::string latest_run(const std::string& parent);

// One finished epoch: a metrics.jsonl "epoch" record and a metrics.csv row.
struct EpochLog {
  int64_t epoch = 0;          // from 1
  double time_s = 0;          // training time of the epoch in this process
  double images_per_s = 0;
  double train_accuracy = 0, loss = 0, val_accuracy = 0, val_loss = 0, val_time_s = 0, lr = 0;
  double elapsed_s = 0;       // training time of the whole run up to the end of this epoch
};

class RunFolder {
 public:
  explicit RunFolder(std::string dir);

  const std::string& dir() const { return dir_; }
  std::string last_path() const;
  std::string best_path() const;
  std::string epoch_path(int64_t epoch) const;

  // Takes the folder's lock (FolderLock, core/fs.h) for the life of this object when the
  // folder exists (begin() creates and locks it otherwise): a second process that tries gets
  // UsageError naming this one's process id. Called before anything is read or removed.
  void lock();
  // Refuses (UsageError naming the process) a folder another train holds, without taking the
  // lock or creating its file: for refusing a folder and leaving it as it was.
  static void check_not_in_use(const std::string& dir);

  // Before the first write. A fresh run checks the folder again (check_fresh_run), removes
  // an earlier run's files when `overwrite` (and says what it removed), and starts new
  // logs; a resumed run appends to them, after dropping the epoch and batch records past
  // its checkpoint (`epochs_done` whole epochs, then `batch` batches): a run killed between
  // an epoch's records and its checkpoint wrote them, and the resumed run writes them again.
  // Both create the folder and write config.yaml.
  void begin(bool resume, bool overwrite, const std::string& config_yaml, int64_t epochs_done = 0,
             int64_t batch = 0);

  // One metrics.jsonl line (a JSON object), written and flushed whole.
  void log_json(const std::string& record);
  // The epoch's metrics.jsonl record and metrics.csv row.
  void log_epoch(const EpochLog& r);

  // Writes a checkpoint's bytes atomically: at an epoch's end to checkpoints/epoch-NNN.ckpt,
  // best.ckpt when `best`, then last.ckpt; in the middle of an epoch to last.ckpt only.
  void save_checkpoint(const std::string& bytes, int64_t epoch, bool end_of_epoch, bool best);

 private:
  std::string dir_;
  std::optional<FolderLock> lock_;
  std::ofstream jsonl_, csv_;
};

}  // namespace mnistctl
