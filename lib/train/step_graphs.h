// The trainer's use of step graphs (train.cuda_graphs; Backend::capture in backend.h).
//
// At batch 100 a GPU step is bound by its some fifty kernel launches, so the training step
// (gather, forward, backward, optimizer) and the validation forward can be captured once
// per batch size into a CUDA graph and replayed. This class keeps that bookkeeping out of
// the batch loop: the loop hands it each step as a function plus its StepScalars, and it
// runs the step eagerly or replays a graph. A step is replayed only where it is safe:
//   - train.cuda_graphs is on and the backend supports graphs (else one line says why not,
//     once, and every step runs eagerly: results are then those of train.cuda_graphs: false);
//   - not under data parallelism, even with one rank (no MPI or NCCL call may sit inside a graph);
//   - a full batch (the last, smaller batch of an epoch runs eagerly);
//   - not the first step of its kind and size in this process: that one runs eagerly, so
//     cuDNN's algorithm choice and every workspace are settled before the capture (a graph
//     keeps the scratch blocks it was captured with alive, whatever later eager steps grow).
// A failed capture prints one warning line with the reason and turns graphs off for the
// rest of the run (the failed step then runs eagerly; nothing of it had run).
// The step function must set every piece of host state it relies on itself (it runs once
// under capture, then never again on the host), and leave the host as an eager step would.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "backend/backend.h"

namespace mnistctl {

class StepGraphs {
 public:
  enum class Kind { train, validation };
  // `say` prints one line (the trainer's out_line). `data_parallel`: the trainer runs under
  // lib/dist (mpirun, any number of ranks): its step then calls the collective.
  StepGraphs(Backend& be, bool wanted, bool data_parallel, std::function<void(const std::string&)> say);

  // Runs `step` once: eagerly, or by replaying (after capturing, the first time) the graph of
  // (kind, rows). `full`: the batch has the full batch size.
  void run(Kind kind, int64_t rows, bool full, const StepScalars& s, const std::function<void()>& step);

  bool enabled() const { return enabled_; }

 private:
  struct Entry {
    bool warmed = false;  // one eager step of this kind and size has run
    std::unique_ptr<StepGraph> graph;
  };
  Backend& be_;
  bool enabled_ = false;
  bool announced_ = false;
  std::function<void(const std::string&)> say_;
  std::map<std::pair<Kind, int64_t>, Entry> entries_;
};

}  // namespace mnistctl
