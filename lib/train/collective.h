// What the trainer needs from data parallelism, and nothing of MPI: the process's rank and
// the number of ranks, a broadcast of rank 0's parameters, one in-place sum of the packed
// gradients per step, sums of host values (metric sums), a test that a value is equal on
// every rank (the parameter checksum) and a maximum (the stop signal every rank agrees on).
//
// This base class is the single process: rank 0 of 1, and every call leaves its argument as
// it is. lib/dist implements it over MPI (and, on the GPU, NCCL through the backend's
// collective hooks); the trainer never includes mpi.h, so train does not depend on dist.
//
// Every call is collective: all ranks make the same calls in the same order, or the job
// hangs. The trainer keeps its ranks in lockstep (same batches, same epochs, same logging
// points); only what rank 0 alone does (writing the run folder, printing) stays out of it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace mnistctl {

class Collective {
 public:
  virtual ~Collective() = default;

  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  bool is_root() const { return rank() == 0; }
  // One line for the start-up log, "" for a single process.
  virtual std::string describe() const { return ""; }

  // Makes the training backend. Under MPI each rank takes its own device ("gpu" becomes the
  // GPU of its node-local rank) and share of the cores, and a device backend joins its
  // communicator (NCCL).
  virtual std::unique_ptr<Backend> make_backend(const std::string& ctx, const BackendOptions& opts) {
    return mnistctl::make_backend(ctx, opts);
  }
  // t = rank 0's t, on every rank.
  virtual void broadcast(Backend&, Tensor&) {}
  virtual void broadcast(std::vector<int64_t>&) {}
  virtual void broadcast(std::string&) {}
  // t = the sum of t over all ranks, in place (the packed gradients, once per step).
  virtual void allreduce_sum(Backend&, Tensor&) {}
  virtual void allreduce_sum(std::vector<double>&) {}
  virtual int64_t allreduce_max(int64_t v) { return v; }
  // True on every rank when v is the same on all of them.
  virtual bool same_on_all(uint64_t) { return true; }
};

}  // namespace mnistctl
