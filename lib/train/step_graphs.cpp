// StepGraphs: see step_graphs.h.
#include "train/step_graphs.h"

#include <fmt/format.h>

namespace mnistctl {

StepGraphs::StepGraphs(Backend& be, bool wanted, bool data_parallel, std::function<void(const std::string&)> say)
    : be_(be), say_(std::move(say)) {
  if (!wanted) return;
  if (!be_.supports_graphs()) {
    say_(fmt::format("train.cuda_graphs: {} has no CUDA graphs; every step runs eagerly", be_.name()));
    return;
  }
  if (data_parallel) {
    say_("train.cuda_graphs: not used under data parallelism (mpirun); every step runs eagerly");
    return;
  }
  enabled_ = true;
}

void StepGraphs::run(Kind kind, int64_t rows, bool full, const StepScalars& s, const std::function<void()>& step) {
  if (!enabled_ || !full) return step();
  Entry& e = entries_[{kind, rows}];
  if (!e.warmed) {  // the first step of this kind and size settles algorithms and workspaces
    step();
    e.warmed = true;
    return;
  }
  if (!e.graph) {
    std::string why;
    e.graph = be_.capture(s, step, &why);
    if (!e.graph) {
      say_(fmt::format("warning: train.cuda_graphs: capturing the {} step failed ({}); every step runs eagerly",
                       kind == Kind::train ? "training" : "validation", why));
      enabled_ = false;
      entries_.clear();
      return step();  // nothing of the captured step ran
    }
    if (!announced_) {
      say_(fmt::format("train.cuda_graphs: full batches of {} rows are replayed from CUDA graphs", rows));
      announced_ = true;
    }
  }
  e.graph->replay(s);
}

}  // namespace mnistctl
