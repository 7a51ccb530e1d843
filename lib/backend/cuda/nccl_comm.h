// NCCL for data parallelism on the GPU (lib/dist drives it through Backend::comm_*): one
// communicator per process, joined with an id that rank 0 makes and lib/dist broadcasts
// over MPI, and an in-place sum of the packed gradients on the backend's stream.
//
// NCCL is loaded with dlopen on first use, not linked: a single-GPU run never needs it,
// and the module still loads where NCCL is missing. It is looked up as libnccl.so.2 (the
// loader's search), then at the path found at build time (MNISTCTL_NCCL_LIBRARY).
// Built only where nccl.h was found (MNISTCTL_HAVE_NCCL); otherwise comm_id_bytes() is 0
// and lib/dist refuses the GPU under mpirun with one line.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace mnistctl::cuda {

class NcclComm {
 public:
  // Bytes of an id (NCCL_UNIQUE_ID_BYTES); 0 in a build without nccl.h.
  static size_t id_bytes();
  // Rank 0: a fresh id (ncclGetUniqueId). Throws RuntimeError when NCCL cannot be loaded.
  static void make_id(void* id);
  // Joins the communicator on the current device (ncclCommInitRank; blocks until every
  // rank has joined).
  NcclComm(const void* id, int rank, int size);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  // data[0, count) = the sum over ranks, in place, queued on `stream`.
  void allreduce_sum(float* data, size_t count, cudaStream_t stream);

 private:
  void* comm_ = nullptr;  // ncclComm_t
};

}  // namespace mnistctl::cuda
