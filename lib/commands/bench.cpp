// `mnistctl bench`: resolves the config (file or built-in, --set overrides) and prints the
// per-layer timing of one training step (bench/bench.h) as a table or one JSON object.
#include <cstdio>

#include "bench/bench.h"
#include "commands/commands.h"
#include "core/error.h"

namespace mnistctl {

int run_bench(const BenchOptions& o) {
  std::vector<std::string> sets = o.sets;
  if (!o.precision.empty()) sets.push_back("train.precision=" + o.precision);
  BenchRequest req;
  req.config = o.config.empty() ? load_config_text(builtin_lenet_yaml(), "<built-in lenet.yaml>", sets)
                                : load_config_file(o.config, sets);
  req.ctx = o.run.ctx;
  req.backend.threads = o.run.threads;
  req.backend.allow_tf32 = req.config.train.allow_tf32;
  req.backend.precision = req.config.train.precision == "bf16" ? Precision::bf16 : Precision::fp32;
  check_precision(o.run.ctx, req.backend.precision, "train.precision");
  req.batch = o.batch;
  req.iters = o.iters;
  req.warmup = o.warmup;
  BenchResult r = bench_network(req);
  std::string text = o.json ? format_bench_json(r) + "\n" : format_bench_text(r);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace mnistctl
