// `mnistctl eval`: scores a checkpoint on the test set of the dataset it was trained on;
// with --min-accuracy it is a CI gate (exit 1 below the bar).
#include <cstdio>

#include <fmt/format.h>

#include "commands/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "train/metrics.h"
#include "commands/open_model.h"

namespace mnistctl {

int run_eval(const EvalOptions& o) {
  OpenModel om = open_model(o.run, o.model, o.checkpoint);
  Backend* be = om.backend.get();
  const Model& m = om.model;
  const std::string dataset = test_dataset_for(m, o.dataset);
  Dataset test = load_split(o.run.data_dir, dataset, Split::test);
  if (m.net->num_classes() != test.num_classes)
    throw UsageError(fmt::format("{}: the network has {} outputs, {} has {} classes", m.path,
                                 m.net->num_classes(), dataset, test.num_classes));
  EvalAccumulator acc(static_cast<int>(m.net->num_classes()), o.top_k);
  run_inference(*m.net, *be, std::move(test.images), test.count, test.sample_size(), kInferenceBatch,
                [&](int64_t first, int64_t n, const float* probs) {
                  acc.add(probs, test.labels.data() + first, n);
                });
  EvalResult r = acc.result();
  if (o.json) {
    EvalSource src{m.path, dataset + " (test)", be->name(), o.min_accuracy,
                   find_dataset(dataset).class_names};
    std::fputs((format_eval_json(r, src) + "\n").c_str(), stdout);
  } else {
    std::fputs(fmt::format("model: {}\ndataset: {} (test set)\nbackend: {}\n{}", m.path, dataset,
                           be->name(), format_eval_text(r, find_dataset(dataset).class_names))
                   .c_str(),
               stdout);
  }
  std::fflush(stdout);
  if (o.min_accuracy >= 0) {
    if (r.accuracy < o.min_accuracy) {
      log_line(fmt::format("FAIL: accuracy {:.4f} is below --min-accuracy {}", r.accuracy, o.min_accuracy));
      return kExitGateFailed;
    }
    log_line(fmt::format("PASS: accuracy {:.4f} >= {}", r.accuracy, o.min_accuracy));
  }
  return kExitOk;
}

}  // namespace mnistctl
