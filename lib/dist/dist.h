// Data parallelism across processes: the room that holds MPI (Open MPI), so that nothing
// else includes mpi.h. `mpirun -np N mnistctl train` trains one model on N ranks; the
// trainer sees them only through the Collective interface (train/collective.h).
//
// join() decides from the environment, before MPI is touched, how this process was started:
//   - not by an MPI launcher: a plain Collective (one process; MPI is never initialised);
//   - by mpirun (any number of ranks, 1 included): the MPI Collective (MPI_Init now,
//     MPI_Finalize when it goes); a GPU backend then reduces on the device with NCCL;
//   - by a launcher with more than one rank in a build without MPI: refused (UsageError,
//     exit 2), rather than training N independent copies.
#pragma once

#include <exception>
#include <memory>

#include "train/collective.h"

namespace mnistctl::dist {

// Whether this build has the MPI component (MNISTCTL_ENABLE_MPI).
bool have_mpi();

// The number of ranks an MPI launcher started (Open MPI's OMPI_COMM_WORLD_SIZE, PMI_SIZE,
// PMIx's PMIX_RANK past 0, MPICH's MPI_LOCALNRANKS); 0 when no launcher started us.
int launcher_size();

std::unique_ptr<Collective> join();

// Ends a run that failed on this rank: with one rank, rethrows `e` (main prints it as
// always). With several, prints one line (rank 0: "mnistctl: <message>"; another rank:
// "mnistctl: rank R: <message>", a second later so that an error every rank meets is
// printed once, by rank 0) and aborts the whole job with the error's exit code, so no rank
// is left waiting in a collective.
[[noreturn]] void fail(Collective& job, std::exception_ptr e);

}  // namespace mnistctl::dist
