// Finding the checkpoint and the run's record of it. metrics.jsonl is the trainer's own
// output (one JSON object per line, docs/checkpoint.md); only its "epoch" records are read,
// and a later record for the same epoch (after a resume) wins.
#include "export/export_source.h"

#include <filesystem>
#include <fstream>
#include <regex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/json.h"
#include "data/catalog.h"
#include "train/model.h"

namespace mnistctl {

namespace fs = std::filesystem;

namespace {

struct EpochRecord {
  int64_t epoch = 0;
  std::string val_accuracy;  // as written, so metadata repeats the run's figure exactly
};

// The "epoch" records of a run's metrics.jsonl; a line that is not one is skipped.
std::vector<EpochRecord> read_epoch_records(const std::string& run_dir) {
  std::vector<EpochRecord> recs;
  std::ifstream in(run_dir + "/metrics.jsonl");
  static const std::regex kEpoch("\"type\":\"epoch\",\"epoch\":([0-9]+)");
  static const std::regex kAcc("\"val_accuracy\":([0-9.eE+-]+)");
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (!std::regex_search(line, m, kEpoch)) continue;
    EpochRecord r;
    r.epoch = std::stoll(m[1]);
    if (!std::regex_search(line, m, kAcc)) continue;
    r.val_accuracy = m[1];
    recs.push_back(r);
  }
  return recs;
}

// A checkpoint inside a run folder: <run>/last.ckpt or <run>/checkpoints/epoch-NNN.ckpt.
std::string run_dir_of(const std::string& ckpt_path) {
  std::error_code ec;
  fs::path dir = fs::absolute(ckpt_path, ec).parent_path();
  if (fs::exists(dir / "metrics.jsonl", ec)) return dir.string();
  if (dir.filename() == "checkpoints" && fs::exists(dir.parent_path() / "metrics.jsonl", ec))
    return dir.parent_path().string();
  return "";
}

}  // namespace

const char* mnistctl_version() { return MNISTCTL_VERSION; }

ExportSource open_export_source(const std::string& model, const std::string& which) {
  ExportSource s;
  s.checkpoint_path = resolve_checkpoint(model, which);  // eval's and predict's lookup: best.ckpt, last.ckpt
  s.ckpt = load_checkpoint(s.checkpoint_path);
  s.config = load_config_text(s.ckpt.config_yaml, s.checkpoint_path + " (embedded config)");
  s.epoch = s.ckpt.meta_int("epoch", s.checkpoint_path);
  s.batch = s.ckpt.meta_int("batch", s.checkpoint_path);
  s.run_dir = run_dir_of(s.checkpoint_path);
  s.test_accuracy = "unknown";
  // Only an end-of-epoch checkpoint has the weights that epoch's validation pass scored.
  if (!s.run_dir.empty() && s.batch == 0) {
    for (const auto& r : read_epoch_records(s.run_dir))
      if (r.epoch == s.epoch) s.test_accuracy = r.val_accuracy;
  }
  return s;
}

std::string epoch_text(const ExportSource& src) {
  return src.batch == 0 ? std::to_string(src.epoch) : fmt::format("{} (+{} batches)", src.epoch, src.batch);
}

OnnxMetadata export_metadata(const ExportSource& src) {
  const DatasetInfo& ds = find_dataset(src.config.data.dataset);
  std::string names = "[";
  for (size_t i = 0; i < ds.class_names.size(); ++i) names += (i ? "," : "") + json_string(ds.class_names[i]);
  names += "]";
  const std::string epoch = epoch_text(src);
  std::string test_images = src.config.data.test_limit > 0 ? std::to_string(src.config.data.test_limit) : "all";
  return {
      {"mnistctl_version", mnistctl_version()},
      {"dataset", src.config.data.dataset},
      {"class_names", names},
      {"epoch", epoch},
      {"test_accuracy", src.test_accuracy},
      {"test_images", test_images},
      {"input", fmt::format("float32 [N,{}]: pixel / 255, in [0, 1] (as mnistctl predict)",
                            fmt::join(src.config.network.input.dims, ","))},
  };
}

}  // namespace mnistctl
