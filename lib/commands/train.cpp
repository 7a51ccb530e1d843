// `mnistctl train`: resolves the config (file or built-in, --set and flag overrides, or the
// run's own config on --resume), then hands over to the trainer.
#include <cstdio>

#include <fmt/format.h>

#include "commands/commands.h"
#include "core/error.h"
#include "nn/network.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace mnistctl {

int run_train(const TrainOptions& o) {
  std::vector<std::string> sets = o.sets;
  if (o.epochs > 0) sets.push_back(fmt::format("train.epochs={}", o.epochs));
  if (o.seed >= 0) sets.push_back(fmt::format("train.seed={}", o.seed));
  if (o.deterministic) sets.push_back("train.deterministic=true");

  Config cfg = o.config.empty() ? load_config_text(builtin_lenet_yaml(), "<built-in lenet.yaml>", sets)
                                : load_config_file(o.config, sets);
  const std::string out_dir = o.out.empty() ? "runs/" + cfg.name : o.out;
  if (o.resume) {
    // The run's own config wins, so a resumed run is the same run; only the overrides given
    // now (--epochs to extend it, say) are applied on top. A --config naming another
    // network is a mistake worth stopping for.
    std::string last = out_dir + "/last.ckpt";
    Checkpoint c = load_checkpoint(last);
    Config saved = load_config_text(c.config_yaml, last + " (embedded config)", sets);
    if (!o.config.empty() && saved.name != cfg.name)
      throw UsageError(fmt::format("--resume: {} holds a run of '{}', but --config {} is '{}' (leave out "
                                   "--config to resume the run as it was)",
                                   out_dir, saved.name, o.config, cfg.name));
    cfg = saved;
  }

  Network net(cfg.network);
  check_trainable(cfg, net);  // the same checks a real run makes before touching data
  if (o.dry_run) {
    const TrainSpec& t = cfg.train;
    std::fputs(fmt::format("{} ({})\n{}dataset {}, {} epochs, batch {}, {} at learning rate {:g} ({} schedule), "
                           "{} init, seed {}\n",
                           cfg.name, cfg.source, net.summary(t.batch_size), cfg.data.dataset, t.epochs,
                           t.batch_size, t.optimizer.type, t.optimizer.learning_rate, t.lr_schedule.type,
                           cfg.init.type, t.seed)
                   .c_str(),
               stdout);
    return kExitOk;
  }

  TrainRequest req;
  req.out_dir = out_dir;
  req.config = cfg;
  req.ctx = o.run.ctx;
  req.data_root = o.run.data_dir;
  req.resume = o.resume;
  req.backend.threads = o.run.threads;
  req.backend.deterministic = cfg.train.deterministic;
  req.backend.allow_tf32 = cfg.train.allow_tf32;
  return train_network(req);
}

}  // namespace mnistctl
