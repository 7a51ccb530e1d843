// Placeholder until the subcommand lands.
#include "commands/commands.h"
#include "core/error.h"
namespace mnistctl {
int run_train(const TrainOptions&) { throw RuntimeError("train: not implemented yet"); }
}  // namespace mnistctl
