#include "report/run_reader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "train/checkpoint.h"

namespace mnistctl {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Both catalog datasets have 60,000 training images; used only when no checkpoint says how
// many a run trained on.
constexpr int64_t kCatalogTrainImages = 60000;

double number(const json& o, const char* key, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return kNaN;
  if (!it->is_number()) throw UsageError(fmt::format("{}: field '{}' should be a number, found {}", where, key, it->dump()));
  return it->get<double>();
}

int64_t integer(const json& o, const char* key, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > (int64_t(1) << 40))
    throw UsageError(fmt::format("{}: field '{}' should be a non-negative integer", where, key));
  return it->get<int64_t>();
}

}  // namespace

double RunData::batch_x(const BatchRecord& b) const {
  if (batches_per_epoch <= 0) return static_cast<double>(b.epoch - 1);
  return static_cast<double>(b.epoch - 1) + static_cast<double>(b.batch) / static_cast<double>(batches_per_epoch);
}

std::string RunData::state() const {
  const int64_t done = epochs.empty() ? 0 : epochs.back().epoch;
  if (done == 0 && batches.empty()) return "not started (no epoch or batch logged yet)";
  if (planned_epochs > 0 && done >= planned_epochs) return fmt::format("complete: {} of {} epochs", done, planned_epochs);
  if (!stopped_by.empty() && stopped_by != "epochs" && !epochs.empty())
    return fmt::format("stopped early by train.{} after {} of {} epochs", stopped_by, done, planned_epochs);
  if (planned_epochs > 0)
    return fmt::format("{} of {} epochs: interrupted, stopped early or still training", done, planned_epochs);
  return fmt::format("{} epochs logged", done);
}

void parse_metrics(const std::string& text, const std::string& source, RunData& run) {
  size_t pos = 0;
  int64_t line_no = 0;
  std::map<int64_t, EpochRecord> epochs;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const bool last_unterminated = nl == std::string::npos;
    const std::string line = text.substr(pos, last_unterminated ? std::string::npos : nl - pos);
    pos = last_unterminated ? text.size() : nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", source, line_no);
    json o = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (o.is_discarded() || !o.is_object()) {
      if (last_unterminated) {
        run.notes.push_back(fmt::format("{}: the last record was cut mid-write (the run is still writing, or stopped "
                                        "while writing); it is left out",
                                        where));
        break;
      }
      throw UsageError(fmt::format("{}: not a JSON object (is metrics.jsonl damaged?)", where));
    }
    auto type = o.find("type");
    if (type == o.end() || !type->is_string()) continue;  // not a record this report knows
    if (*type == "batch") {
      BatchRecord b;
      b.epoch = integer(o, "epoch", where);
      b.batch = integer(o, "batch", where);
      b.images_per_s = number(o, "images_per_s", where);
      b.train_accuracy = number(o, "train_accuracy", where);
      b.loss = number(o, "loss", where);
      run.batches.push_back(b);
    } else if (*type == "epoch") {
      EpochRecord e;
      e.epoch = integer(o, "epoch", where);
      e.time_s = number(o, "time_s", where);
      e.images_per_s = number(o, "images_per_s", where);
      e.train_accuracy = number(o, "train_accuracy", where);
      e.loss = number(o, "loss", where);
      e.val_accuracy = number(o, "val_accuracy", where);
      e.val_loss = number(o, "val_loss", where);
      e.val_time_s = number(o, "val_time_s", where);
      e.lr = number(o, "lr", where);
      epochs[e.epoch] = e;  // a resumed run may log an epoch again: the later record wins
    } else if (*type == "summary") {
      auto by = o.find("stopped_by");
      run.stopped_by = by != o.end() && by->is_string() ? by->get<std::string>() : "";
      run.target_accuracy = o.contains("target_accuracy") ? number(o, "target_accuracy", where) : 0;
      run.time_to_accuracy_s = o.contains("time_to_accuracy_s") ? number(o, "time_to_accuracy_s", where) : -1;
      run.time_to_accuracy_epoch = o.contains("time_to_accuracy_epoch") ? integer(o, "time_to_accuracy_epoch", where) : 0;
    }
  }
  run.epochs.clear();
  for (auto& [k, e] : epochs) run.epochs.push_back(e);
}

RunData read_run(const std::string& dir) {
  RunData run;
  run.dir = dir;
  std::error_code ec;
  if (fs::is_regular_file(dir, ec))
    throw UsageError(fmt::format("{}: is a file; report takes the run folder that holds it (give the folder "
                                 "`mnistctl train --out` wrote)",
                                 dir));
  if (!fs::is_directory(dir, ec))
    throw UsageError(fmt::format("{}: no such run folder (give the folder `mnistctl train --out` wrote)", dir));
  const std::string cfg_path = dir + "/config.yaml", metrics_path = dir + "/metrics.jsonl";
  const bool has_cfg = fs::is_regular_file(cfg_path, ec), has_metrics = fs::is_regular_file(metrics_path, ec);
  if (!has_cfg && !has_metrics)
    throw UsageError(fmt::format("{}: not a run folder (it has neither config.yaml nor metrics.jsonl)", dir));

  const auto cfg_size = has_cfg ? fs::file_size(cfg_path, ec) : 0;
  if (has_cfg && !ec && cfg_size > kMaxConfigBytes) {
    run.notes.push_back(fmt::format("config.yaml is not shown: {} bytes, more than a config holds (at most {} MiB)",
                                    cfg_size, kMaxConfigBytes >> 20));
  } else if (has_cfg) {
    const auto bytes = read_file(cfg_path);
    run.config_yaml.assign(bytes.begin(), bytes.end());
    try {
      run.config = load_config_text(run.config_yaml, cfg_path);
      run.planned_epochs = run.config->train.epochs;
    } catch (const Error& e) {
      run.config_error = e.what();
      run.notes.push_back(fmt::format("config.yaml does not load: {}", e.what()));
    }
  } else {
    run.notes.push_back("no config.yaml in the run folder");
  }

  if (has_metrics) {
    const auto size = fs::file_size(metrics_path, ec);
    if (!ec && size > static_cast<uintmax_t>(kMaxMetricsBytes))
      throw UsageError(fmt::format("{}: {} bytes, more than the {} MiB a report reads", metrics_path, size, kMaxMetricsBytes >> 20));
    const auto bytes = read_file(metrics_path);
    parse_metrics(std::string(bytes.begin(), bytes.end()), metrics_path, run);
  } else {
    run.notes.push_back("no metrics.jsonl yet");
  }

  for (const char* kind : {"best", "last"}) {
    const std::string p = fmt::format("{}/{}.ckpt", dir, kind);
    if (!fs::is_regular_file(p, ec)) continue;
    try {
      run.checkpoint_meta = load_checkpoint(p).meta;
      run.checkpoint = p;
      run.checkpoint_kind = kind;
      break;
    } catch (const Error& e) {
      run.notes.push_back(fmt::format("{} is not usable: {}", p, e.what()));
    }
  }

  int64_t samples = 0, batch = 0;
  auto meta_int = [&](const char* key) -> int64_t {
    auto it = run.checkpoint_meta.find(key);
    if (it == run.checkpoint_meta.end()) return 0;
    try {
      return std::stoll(it->second);
    } catch (...) {
      return 0;
    }
  };
  samples = meta_int("train_samples");
  batch = meta_int("batch_size");
  if ((samples <= 0 || batch <= 0) && run.config) {
    samples = run.config->data.train_limit > 0 ? std::min(run.config->data.train_limit, kCatalogTrainImages) : kCatalogTrainImages;
    batch = run.config->train.batch_size;
  }
  if (samples > 0 && batch > 0) run.batches_per_epoch = (samples + batch - 1) / batch;
  return run;
}

}  // namespace mnistctl
