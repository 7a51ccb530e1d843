// `mnistctl train`: resolves the config (file or built-in, --set and flag overrides, or the
// run's own config on --resume), then hands over to the trainer.
#include <cstdio>

#include <fmt/format.h>

#include "commands/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
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
  if (o.dry_run) {
    Network net(cfg.network);
    std::fputs(fmt::format("{} ({})\n{}", cfg.name, cfg.source, net.summary(cfg.train.batch_size)).c_str(),
               stdout);
    return kExitOk;
  }

  TrainRequest req;
  req.out_dir = o.out.empty() ? "runs/" + cfg.name : o.out;
  if (o.resume) {
    // The run's own config wins, so a resumed run is the same run; only the overrides given
    // now (--epochs to extend it, say) are applied on top.
    std::string last = req.out_dir + "/last.ckpt";
    Checkpoint c = load_checkpoint(last);
    cfg = load_config_text(c.config_yaml, last + " (embedded config)", sets);
  }
  req.config = cfg;
  req.ctx = o.run.ctx;
  req.data_root = o.run.data_dir;
  req.resume = o.resume;
  req.backend.threads = o.run.threads;
  req.backend.deterministic = cfg.train.deterministic;
  req.backend.allow_tf32 = cfg.train.allow_tf32;
  make_dirs(req.out_dir);
  return train_network(req);
}

}  // namespace mnistctl
