// Placeholder until the subcommand lands.
#include "commands/commands.h"
#include "core/error.h"
namespace mnistctl {
int run_eval(const EvalOptions&) { throw RuntimeError("eval: not implemented yet"); }
}  // namespace mnistctl
