// join() and fail() (dist.h). The MPI Collective is in mpi_collective.cpp, compiled only
// with MNISTCTL_ENABLE_MPI; this file has no MPI in it.
#include "dist/dist.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "core/error.h"

namespace mnistctl::dist {

#if MNISTCTL_HAVE_MPI
std::unique_ptr<Collective> make_mpi_collective();  // mpi_collective.cpp
[[noreturn]] void abort_mpi_job(int code);
#endif

bool have_mpi() { return MNISTCTL_HAVE_MPI != 0; }

int launcher_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (const char* v = std::getenv(name); v && *v) return std::max(1, std::atoi(v));
  // PMIx (Open MPI 5, Slurm) publishes the rank but not the size: a rank past 0 means more
  // than one, rank 0 alone may be the only one.
  if (const char* v = std::getenv("PMIX_RANK"); v && *v) return std::atoi(v) > 0 ? 2 : 1;
  return 0;
}

#if !MNISTCTL_HAVE_MPI
// This process's rank as the launcher tells it (0 when it does not).
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"})
    if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
  return 0;
}
#endif

std::unique_ptr<Collective> join() {
  const int n = launcher_size();
  if (n == 0) return std::make_unique<Collective>();
#if MNISTCTL_HAVE_MPI
  return make_mpi_collective();
#else
  if (n > 1 && launcher_rank() > 0) std::exit(kExitUsage);  // rank 0 says why, once
  if (n > 1)
    throw UsageError(fmt::format("started as one of {} MPI ranks, but this mnistctl was built without MPI "
                                 "(MNISTCTL_ENABLE_MPI=OFF): rebuild with Open MPI, or run it without mpirun",
                                 n));
  return std::make_unique<Collective>();
#endif
}

void fail(Collective& job, std::exception_ptr e) {
  if (job.size() == 1) std::rethrow_exception(e);
  int code = kExitRuntime;
  std::string what = "unknown error";
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    code = err.code();
    what = err.what();
  } catch (const std::bad_alloc&) {
    what = "out of memory";
  } catch (const std::exception& err) {
    what = err.what();
  }
  if (job.is_root()) {
    std::fprintf(stderr, "mnistctl: %s\n", what.c_str());
  } else {
    sleep(1);  // rank 0's abort usually ends this process first when it failed the same way
    std::fprintf(stderr, "mnistctl: rank %d: %s\n", job.rank(), what.c_str());
  }
  std::fflush(stderr);
#if MNISTCTL_HAVE_MPI
  abort_mpi_job(code);
#else
  std::_Exit(code);
#endif
}

}  // namespace mnistctl::dist
