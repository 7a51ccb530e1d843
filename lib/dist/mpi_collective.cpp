// The Collective over MPI (train/collective.h), for processes started by mpirun.
//
// - Host backends (ref, cpu): tensors are host memory, reduced in place with
//   MPI_Allreduce(MPI_IN_PLACE). Device backends (gpu): the gradients are reduced on the
//   device by the backend's own collective (NCCL), whose communicator is bootstrapped here
//   by broadcasting rank 0's id over MPI; MPI carries only host values (metric sums, the
//   stop flag, the checksum) and the one-time broadcast of the parameters.
// - Placement: the node-local rank comes from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
//   "--ctx gpu" becomes gpu:<local rank>; more ranks than GPUs on a node is refused.
//   --threads 0 becomes the cores this rank may use: the cores Open MPI bound it to, or,
//   unbound (--bind-to none), the node's cores shared among its local ranks.
// - Every sum is done by MPI_Allreduce, whose result every rank receives; the trainer's
//   per-epoch checksum proves the ranks still agree.
#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "dist/dist.h"

namespace mnistctl::dist {
namespace {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw RuntimeError(fmt::format("MPI: {}: {}", call, std::string(msg, static_cast<size_t>(len))));
}

// MPI counts are int: large buffers go in pieces.
template <typename F>
void in_chunks(int64_t count, F&& f) {
  for (int64_t at = 0; at < count; at += INT_MAX / 2)
    f(at, static_cast<int>(std::min<int64_t>(INT_MAX / 2, count - at)));
}

class MpiCollective final : public Collective {
 public:
  MpiCollective() {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) check_mpi(MPI_Init(nullptr, nullptr), "MPI_Init");
    // Errors come back as codes (and become exceptions) rather than ending the process.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
              "MPI_Comm_split_type");
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_size(node, &local_size_);
    int leader = local_rank_ == 0 ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &leader, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    nodes_ = leader;
    MPI_Comm_free(&node);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    library_ = std::string(lib, static_cast<size_t>(len));
    library_ = library_.substr(0, library_.find(','));  // "Open MPI v4.1.4"
  }
  ~MpiCollective() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override {
    return fmt::format("data parallel: {} rank{} on {} node{} ({}), {}", size_, size_ == 1 ? "" : "s", nodes_,
                       nodes_ == 1 ? "" : "s", library_,
                       device_ ? "one GPU per rank, gradients summed by NCCL"
                               : fmt::format("{} thread{} per rank", threads_, threads_ == 1 ? "" : "s"));
  }

  std::unique_ptr<Backend> make_backend(const std::string& ctx, const BackendOptions& opts) override {
    BackendOptions o = opts;
    std::string c = ctx;
    const bool gpu = ctx.rfind("gpu", 0) == 0;
    if (gpu) {
      if (ctx != "gpu" && local_size_ > 1)
        throw UsageError(fmt::format("--ctx {}: under mpirun each rank takes the GPU of its node-local rank; "
                                     "give --ctx gpu",
                                     ctx));
      if (ctx == "gpu") c = fmt::format("gpu:{}", local_rank_);
    } else if (o.threads == 0) {
      o.threads = default_threads();
    }
    threads_ = o.threads;
    std::unique_ptr<Backend> be;
    try {
      be = mnistctl::make_backend(c, o);
    } catch (const Error& e) {
      if (gpu && local_rank_ > 0)
        throw UsageError(fmt::format("{} (rank {} is local rank {} of {} on this node: run at most one rank per "
                                     "GPU, NCCL does not allow two ranks on one GPU)",
                                     e.what(), rank_, local_rank_, local_size_));
      throw;
    }
    if (!be->host_memory()) {
      if (be->comm_id_bytes() == 0)
        throw UsageError(fmt::format("--ctx {} under mpirun needs NCCL, but this CUDA module was built without "
                                     "it (nccl.h was not found)",
                                     ctx));
      std::vector<char> id(be->comm_id_bytes());
      if (rank_ == 0) be->comm_make_id(id.data());
      check_mpi(MPI_Bcast(id.data(), static_cast<int>(id.size()), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
      be->comm_init(id.data(), rank_, size_);
      device_ = true;
    }
    return be;
  }

  void broadcast(Backend& be, Tensor& t) override {
    if (be.host_memory()) {
      bcast_floats(t.data, t.numel());
      return;
    }
    std::vector<float> v(static_cast<size_t>(t.numel()));
    be.download(t, v.data());
    bcast_floats(v.data(), t.numel());
    be.upload(t, v.data());
  }
  void broadcast(std::vector<int64_t>& v) override {
    int64_t n = static_cast<int64_t>(v.size());
    check_mpi(MPI_Bcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
    v.resize(static_cast<size_t>(n));
    check_mpi(MPI_Bcast(v.data(), static_cast<int>(n), MPI_INT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }
  void broadcast(std::string& s) override {
    int64_t n = static_cast<int64_t>(s.size());
    check_mpi(MPI_Bcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
    s.resize(static_cast<size_t>(n));
    in_chunks(n, [&](int64_t at, int k) {
      check_mpi(MPI_Bcast(s.data() + at, k, MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Bcast");
    });
  }

  void allreduce_sum(Backend& be, Tensor& t) override {
    if (!be.host_memory()) {
      be.comm_allreduce_sum(t);
      return;
    }
    in_chunks(t.numel(), [&](int64_t at, int k) {
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, t.data + at, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    });
  }
  void allreduce_sum(std::vector<double>& v) override {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
  }
  int64_t allreduce_max(int64_t v) override {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    return v;
  }
  bool same_on_all(uint64_t v) override {
    uint64_t lo = v, hi = v;
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    return lo == hi;
  }

 private:
  void bcast_floats(float* p, int64_t n) {
    in_chunks(n, [&](int64_t at, int k) {
      check_mpi(MPI_Bcast(p + at, k, MPI_FLOAT, 0, MPI_COMM_WORLD), "MPI_Bcast");
    });
  }
  // The cores this rank may use: those it is bound to when Open MPI bound it (fewer than
  // the node has), else the node's share per local rank.
  int default_threads() const {
    cpu_set_t set;
    CPU_ZERO(&set);
    int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0 && mine < online) return std::max(1, mine);
    return std::max(1, mine / std::max(1, local_size_));
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, nodes_ = 1, threads_ = 0;
  bool device_ = false;
  std::string library_;
};

}  // namespace

std::unique_ptr<Collective> make_mpi_collective() { return std::make_unique<MpiCollective>(); }

void abort_mpi_job(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace mnistctl::dist
