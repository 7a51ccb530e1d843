// Placeholder until the subcommand lands.
#include "commands/commands.h"
#include "core/error.h"
namespace mnistctl {
int run_predict(const PredictOptions&) { throw RuntimeError("predict: not implemented yet"); }
}  // namespace mnistctl
