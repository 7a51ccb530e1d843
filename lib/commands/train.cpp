// `mnistctl train`: resolves the config (file or built-in, --set and flag overrides, or the
// run's own config on --resume) and the run folder, then hands over to the trainer. Under
// mpirun it joins the job first (dist/dist.h): rank 0 reads a resumed run's config and
// broadcasts it, and an error on any rank ends the whole job.
//
// The run folder: --out, else runs/<config name>-<dataset>. `--resume` without --out takes
// the folder --config names, or without --config the most recently written run under runs/
// (and says which). A fresh run into a folder that holds a run is refused unless --overwrite.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "commands/commands.h"
#include "core/error.h"
#include "dist/dist.h"
#include "nn/network.h"
#include "core/progress.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/run_folder.h"
#include "train/trainer.h"

namespace mnistctl {
namespace {

int train_in_job(const TrainOptions& o, Collective& job) {
  // The flags are applied after every --set, so an explicit flag wins over --set of the same
  // key whatever their order on the command line (docs/config.md).
  std::vector<std::string> sets = o.sets;
  if (o.epochs > 0) sets.push_back(fmt::format("train.epochs={}", o.epochs));
  if (o.seed >= 0) sets.push_back(fmt::format("train.seed={}", o.seed));
  if (o.deterministic) sets.push_back("train.deterministic=true");
  if (!o.precision.empty()) sets.push_back("train.precision=" + o.precision);
  if (!o.dataset.empty()) sets.push_back("data.dataset=" + o.dataset);

  // On --resume the run's own config wins, so a resumed run is the same run: the overrides
  // given now (--epochs to extend it, say) apply to it, and --config serves only to name
  // the run folder (runs/<name>) and to catch resuming another network by mistake.
  auto given = [&](const std::vector<std::string>& overrides) {
    return o.config.empty() ? load_config_text(builtin_lenet_yaml(), "<built-in lenet.yaml>", overrides)
                            : load_config_file(o.config, overrides);
  };
  if (o.resume && o.overwrite)
    throw UsageError("--resume continues the run in the folder and --overwrite replaces it: give one of them");
  Config cfg;
  std::unique_ptr<Checkpoint> resumed;  // --resume, rank 0: the run's last.ckpt
  std::string out_dir = o.out;
  // --out must be a folder (or not exist yet): refused before any data loads, --dry-run too.
  auto check_out = [](const std::string& dir) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
      throw UsageError(fmt::format("--out {}: is a file, expected a run folder", dir));
  };
  if (!out_dir.empty()) check_out(out_dir);
  if (!o.resume) {
    cfg = given(sets);
    if (out_dir.empty()) out_dir = default_run_dir(cfg);
  } else {
    std::string named;  // the name --config gives, without overrides
    if (!o.config.empty()) named = given({}).name;
    if (out_dir.empty() && !o.config.empty()) out_dir = default_run_dir(given(sets));
    if (out_dir.empty()) {
      out_dir = latest_run("runs");
      if (out_dir.empty())
        throw UsageError("--resume: no run under runs/ to resume (name its folder with --out RUN)");
      if (job.is_root())
        out_line(fmt::format("--resume: continuing the most recently written run, {} (--out RUN picks another)",
                             out_dir));
    }
    check_out(out_dir);
    std::string last = out_dir + "/last.ckpt";
    std::string saved;  // data parallelism: rank 0 reads the run folder, the others get its copy
    if (job.is_root()) {
      std::error_code ec;
      if (!std::filesystem::exists(last, ec)) {
        // A train still before its first checkpoint there: say that, not "stopped early".
        if (std::filesystem::is_directory(out_dir, ec)) RunFolder::check_not_in_use(out_dir);
        if (const std::string kept = newest_epoch_checkpoint(out_dir); !kept.empty())
          throw UsageError(fmt::format("--resume: {} has no last.ckpt, but {} holds a finished epoch (was the write "
                                       "of last.ckpt cut short, by a full disk?): copy that file to {}/last.ckpt "
                                       "and resume again",
                                       out_dir, kept, out_dir));
        if (run_files(out_dir).empty())
          throw UsageError(fmt::format("--resume: {} has no checkpoint yet (no run was trained there): start it "
                                       "without --resume",
                                       out_dir));
        throw UsageError(fmt::format("--resume: {} has no checkpoint yet (stopped before its first one?): start "
                                     "the run again without --resume, with --overwrite",
                                     out_dir));
      }
      resumed = std::make_unique<Checkpoint>(load_checkpoint(last));
      saved = resumed->config_yaml;
    }
    job.broadcast(saved);
    cfg = load_config_text(saved, last + " (embedded config)", sets);
    if (!o.config.empty() && named != cfg.name)
      throw UsageError(fmt::format("--resume: {} holds a run of '{}', but --config {} is '{}' (leave out "
                                   "--config to resume the run as it was)",
                                   out_dir, cfg.name, o.config, named));
    // An edited --config is not silently ignored: with the same overrides applied to both, the
    // file must still say what the run was trained with. --set changes a resumed run.
    if (!o.config.empty()) {
      std::vector<std::string> diff = config_differences(given(sets), cfg);
      if (!diff.empty()) {
        std::string keys;
        for (const auto& k : diff) keys += (keys.empty() ? "" : ", ") + k;
        throw UsageError(fmt::format("--resume: --config {} differs from the config {} was trained with in: {} "
                                     "(leave out --config to resume the run as it was, or change it with --set)",
                                     o.config, out_dir, keys));
      }
    }
  }

  if (o.out.empty()) check_out(out_dir);
  Network net(cfg.network);
  // The checkpoint's config may declare any network: its tensors must really be in the file
  // before the trainer allocates anything for it.
  if (resumed) check_params(net, *resumed, out_dir + "/last.ckpt");
  check_trainable(cfg, net);  // the same checks a real run makes before touching data
  const Precision precision = cfg.train.precision == "bf16" ? Precision::bf16 : Precision::fp32;
  check_precision(o.run.ctx, precision, "train.precision");
  if (job.size() > 1 && cfg.train.batch_size % job.size() != 0)
    throw UsageError(fmt::format("train.batch_size {} cannot be split evenly over {} MPI ranks: use a multiple of {} "
                                 "(it is the global batch; each rank takes batch_size / ranks)",
                                 cfg.train.batch_size, job.size(), job.size()));
  if (o.dry_run && !job.is_root()) return kExitOk;
  if (o.dry_run) {
    const TrainSpec& t = cfg.train;
    std::fputs(fmt::format("{} ({})\n{}dataset {}, {} epochs, batch {}, {} at learning rate {:g} ({} schedule), "
                           "{} init, seed {}\n",
                           cfg.name, cfg.source, net.summary(t.batch_size), cfg.data.dataset, t.epochs,
                           t.batch_size, t.optimizer.type, t.optimizer.learning_rate, t.lr_schedule.type,
                           cfg.init.type, t.seed)
                   .c_str(),
               stdout);
    if (t.early_stopping.enabled)
      std::fputs(fmt::format("early stopping: {} without an improvement above {:g} for {} epochs\n",
                             t.early_stopping.metric, t.early_stopping.min_delta, t.early_stopping.patience)
                     .c_str(),
                 stdout);
    if (t.stop_at_accuracy > 0)
      std::fputs(fmt::format("stop at validation accuracy {:g}\n", t.stop_at_accuracy).c_str(), stdout);
    if (!o.resume) {
      const bool taken = !run_files(out_dir).empty();
      const std::vector<std::string> foreign = foreign_files(out_dir);
      std::fputs(fmt::format("run folder {}{}\n", out_dir,
                             !foreign.empty() ? fmt::format(" (holds {}, which no run wrote: train refuses)", foreign.front())
                             : !taken         ? ""
                             : o.overwrite    ? " (holds a run: --overwrite would replace it)"
                                              : " (holds a run: train refuses without --resume or --overwrite)")
                     .c_str(),
                 stdout);
    }
    return kExitOk;
  }

  TrainRequest req;
  req.out_dir = out_dir;
  req.config = cfg;
  req.ctx = o.run.ctx;
  req.data_root = o.run.data_dir;
  req.resume = o.resume;
  req.overwrite = o.overwrite;
  req.backend.threads = o.run.threads;
  req.backend.deterministic = cfg.train.deterministic;
  req.backend.allow_tf32 = cfg.train.allow_tf32;
  req.backend.precision = precision;
  req.collective = &job;
  return train_network(req);
}

}  // namespace

int run_train(const TrainOptions& o) {
  std::unique_ptr<Collective> job = dist::join();  // a single process unless started by mpirun
  try {
    return train_in_job(o, *job);
  } catch (...) {
    dist::fail(*job, std::current_exception());  // one rank: rethrows; several: aborts the job
  }
}

}  // namespace mnistctl
