// NCCL through dlopen: see nccl_comm.h. The function pointer types come from nccl.h, so a
// changed signature fails to compile rather than at run time.
#include "backend/cuda/nccl_comm.h"

#include <dlfcn.h>

#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"

#if MNISTCTL_HAVE_NCCL
#include <nccl.h>
#endif

namespace mnistctl::cuda {

#if MNISTCTL_HAVE_NCCL
namespace {

struct Nccl {
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
};

// Loaded once, never closed (like the module itself).
const Nccl& nccl() {
  static const Nccl n = [] {
    void* h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
#ifdef MNISTCTL_NCCL_LIBRARY
    if (!h) h = dlopen(MNISTCTL_NCCL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
#endif
    if (!h)
      throw RuntimeError(std::string("--ctx gpu under mpirun needs NCCL, but libnccl.so.2 cannot be loaded: ") +
                         dlerror());
    Nccl r;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
      if (!fn) throw RuntimeError(std::string("libnccl.so.2 lacks ") + name);
    };
    sym(r.get_unique_id, "ncclGetUniqueId");
    sym(r.comm_init_rank, "ncclCommInitRank");
    sym(r.all_reduce, "ncclAllReduce");
    sym(r.comm_destroy, "ncclCommDestroy");
    sym(r.error_string, "ncclGetErrorString");
    return r;
  }();
  return n;
}

void check_nccl(ncclResult_t r, const char* call) {
  if (r != ncclSuccess) throw RuntimeError(std::string("nccl: ") + call + ": " + nccl().error_string(r));
}

}  // namespace

size_t NcclComm::id_bytes() { return NCCL_UNIQUE_ID_BYTES; }

void NcclComm::make_id(void* id) {
  ncclUniqueId u;
  check_nccl(nccl().get_unique_id(&u), "ncclGetUniqueId");
  static_assert(sizeof u == NCCL_UNIQUE_ID_BYTES);
  std::memcpy(id, &u, sizeof u);
}

NcclComm::NcclComm(const void* id, int rank, int size) {
  ncclUniqueId u;
  std::memcpy(&u, id, sizeof u);
  ncclComm_t c = nullptr;
  check_nccl(nccl().comm_init_rank(&c, size, u, rank), "ncclCommInitRank");
  comm_ = c;
}

NcclComm::~NcclComm() {
  if (comm_) nccl().comm_destroy(static_cast<ncclComm_t>(comm_));
}

void NcclComm::allreduce_sum(float* data, size_t count, cudaStream_t stream) {
  check_nccl(nccl().all_reduce(data, data, count, ncclFloat32, ncclSum, static_cast<ncclComm_t>(comm_), stream),
             "ncclAllReduce");
}

#else  // built without nccl.h

size_t NcclComm::id_bytes() { return 0; }
void NcclComm::make_id(void*) { throw RuntimeError("this CUDA module was built without NCCL"); }
NcclComm::NcclComm(const void*, int, int) { throw RuntimeError("this CUDA module was built without NCCL"); }
NcclComm::~NcclComm() = default;
void NcclComm::allreduce_sum(float*, size_t, cudaStream_t) {}

#endif

}  // namespace mnistctl::cuda
