// `mnistctl info RUN|CKPT [--json]`: what a run folder or checkpoint holds: the network
// (layers, output shapes, parameters), the dataset, how far training got (epoch, batch,
// step), the validation accuracy at that point, the run's best epoch and the resolved config. Only the file is
// read, on the host: no backend is made, so it works on any machine, GPU run or not.
//
// The accuracy comes from metrics.jsonl of the run the checkpoint belongs to (the folder it
// sits in, or the one above for checkpoints/epoch-NNN.ckpt): the last "epoch" record whose
// epoch is the checkpoint's. A checkpoint on its own has no accuracy; that is said, not guessed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>

#include <fmt/format.h>

#include "commands/commands.h"
#include "config/config.h"
#include "core/error.h"
#include "core/json.h"
#include "nn/network.h"
#include "train/checkpoint.h"
#include "train/model.h"

namespace mnistctl {
namespace {

namespace fs = std::filesystem;

struct EpochRecord {
  double val_accuracy = 0, train_accuracy = 0, loss = 0;
};

std::string run_folder_of(const std::string& ckpt) {
  fs::path dir = fs::path(ckpt).parent_path();
  if (dir.filename() == "checkpoints") dir = dir.parent_path();
  return dir.empty() ? "." : dir.string();
}

std::optional<double> number(const std::string& line, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(line, m, std::regex("\"" + key + "\":(-?[0-9.eE+-]+)"))) return std::nullopt;
  try {
    return std::stod(m[1]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The last epoch record for `epoch`; nothing when the file or the record is absent. Lines
// that do not parse are skipped: a run still training may have a half-written last line.
std::optional<EpochRecord> epoch_record(const std::string& metrics, int64_t epoch) {
  std::ifstream in(metrics);
  if (!in) return std::nullopt;
  std::optional<EpochRecord> found;
  std::string line;
  const std::string tag = "\"type\":\"epoch\"";
  while (std::getline(in, line)) {
    if (line.find(tag) == std::string::npos) continue;
    auto e = number(line, "epoch");
    auto v = number(line, "val_accuracy");
    if (!e || !v || static_cast<int64_t>(*e) != epoch) continue;
    found = EpochRecord{*v, number(line, "train_accuracy").value_or(0), number(line, "loss").value_or(0)};
  }
  return found;
}

std::string meta_or(const Checkpoint& c, const std::string& key, const std::string& def) {
  auto it = c.meta.find(key);
  return it == c.meta.end() ? def : it->second;
}

std::string dims_json(const Shape& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.dims.size(); ++i) o += (i ? "," : "") + std::to_string(s.dims[i]);
  return o + "]";
}

}  // namespace

int run_info(const InfoOptions& o) {
  const std::string path = resolve_checkpoint(o.target);
  const Checkpoint ckpt = load_checkpoint(path);
  const Config cfg = load_config_text(ckpt.config_yaml, path + " (embedded config)");
  const Network net(cfg.network);
  check_params(net, ckpt, path);  // eval's check: tensors that do not fit the network are damage
  const int64_t epoch = ckpt.meta_int("epoch", path);
  const int64_t batch = ckpt.meta_int("batch", path);
  const int64_t step = ckpt.meta_int("step", path);
  const std::string run = run_folder_of(path);
  const std::string metrics = run + "/metrics.jsonl";
  const std::optional<EpochRecord> rec = epoch > 0 ? epoch_record(metrics, epoch) : std::nullopt;
  const std::string backend = meta_or(ckpt, "backend", "unknown");
  // The run's best epoch so far (train keeps it in best.ckpt and in every checkpoint's meta).
  const int64_t best_epoch = ckpt.meta_int_or("best_epoch", path, 0);
  const double best_val = ckpt.meta_double_or("best_val_accuracy", path, 0.0);
  // best.ckpt is named only where it holds that epoch: a checkpoint from earlier in the run
  // knows the best so far, and the run may have found a better one since.
  const std::string best_file = run + "/best.ckpt";
  int64_t best_file_epoch = -1;
  if (best_epoch > 0 && fs::exists(best_file)) {
    try {
      best_file_epoch = best_file == path ? epoch : load_checkpoint(best_file).meta_int_or("epoch", best_file, -1);
    } catch (const Error&) {
      best_file_epoch = -1;  // a damaged best.ckpt: not named here (eval and info on it say what is wrong)
    }
  }
  const bool best_here = best_file_epoch == best_epoch;

  if (o.json) {
    std::string layers;
    for (const auto& l : net.layers()) {
      int64_t params = 0;
      for (const auto& p : l->params()) params += p.shape.numel();
      layers += fmt::format("{}{{\"name\":{},\"type\":{},\"output\":{},\"parameters\":{}}}", layers.empty() ? "" : ",",
                            json_string(l->name()), json_string(l->type()), dims_json(l->out_shape()), params);
    }
    std::string acc = rec ? fmt::format("{{\"epoch\":{},\"validation\":{:.6f},\"train\":{:.6f},\"loss\":{:.6f}}}",
                                        epoch, rec->val_accuracy, rec->train_accuracy, rec->loss)
                          : "null";
    std::string best = best_epoch > 0 ? fmt::format("{{\"epoch\":{},\"validation\":{:.6f},\"checkpoint\":{}}}",
                                                    best_epoch, best_val, best_here ? json_string(best_file) : "null")
                                      : "null";
    std::fputs(fmt::format("{{\"checkpoint\":{},\"run\":{},\"name\":{},\"network\":{{\"input\":{},\"classes\":{},"
                           "\"parameters\":{},\"layers\":[{}]}},\"dataset\":{},\"epoch\":{},\"epochs\":{},"
                           "\"batch\":{},\"step\":{},\"batch_size\":{},\"backend\":{},\"accuracy\":{},"
                           "\"best\":{},\"config\":{}}}\n",
                           json_string(path), json_string(run), json_string(cfg.name), dims_json(net.input_shape()),
                           net.num_classes(), net.param_count(), layers, json_string(cfg.data.dataset), epoch,
                           cfg.train.epochs, batch, step, cfg.train.batch_size, json_string(backend), acc,
                           best, json_string(ckpt.config_yaml))
                   .c_str(),
               stdout);
    return kExitOk;
  }

  std::string progress = batch > 0 ? fmt::format("{} of {} epochs done, then {} batches into epoch {}", epoch,
                                                 cfg.train.epochs, batch, epoch + 1)
                                   : fmt::format("{} of {} epochs done", epoch, cfg.train.epochs);
  std::string accuracy;
  if (rec)
    accuracy = fmt::format("validation {:.4f} after epoch {} (train {:.4f}, loss {:.4f}; from {})", rec->val_accuracy,
                           epoch, rec->train_accuracy, rec->loss, metrics);
  else if (epoch == 0)
    accuracy = "none yet (the first epoch has not ended)";
  else
    accuracy = fmt::format("unknown (no epoch {} record in {})", epoch, metrics);
  if (best_epoch > 0)
    accuracy += fmt::format("\nbest: validation {:.4f} at epoch {}{}", best_val, best_epoch,
                            best_here              ? fmt::format(" ({})", best_file)
                            : best_file_epoch > 0 ? fmt::format(" (as of this checkpoint; {} now holds epoch {})",
                                                                best_file, best_file_epoch)
                                                  : std::string());
  std::string yaml;
  for (size_t i = 0, j; i < ckpt.config_yaml.size(); i = j + 1) {
    j = ckpt.config_yaml.find('\n', i);
    if (j == std::string::npos) j = ckpt.config_yaml.size();
    yaml += "  " + ckpt.config_yaml.substr(i, j - i) + "\n";
  }
  std::fputs(fmt::format("checkpoint: {}\nrun: {}\nnetwork: {}, {} layers, {} parameters, {} -> {} classes\n{}"
                         "dataset: {}\nprogress: {}, step {} (batch size {})\naccuracy: {}\ntrained on: {}\n"
                         "config:\n{}",
                         path, run, cfg.name, net.layers().size(), net.param_count(), net.input_shape().str(),
                         net.num_classes(), net.summary(cfg.train.batch_size), cfg.data.dataset, progress, step,
                         cfg.train.batch_size, accuracy, backend, yaml)
                 .c_str(),
             stdout);
  return kExitOk;
}

}  // namespace mnistctl
