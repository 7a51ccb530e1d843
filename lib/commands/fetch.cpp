// Placeholder until the subcommand lands.
#include "commands/commands.h"
#include "core/error.h"
namespace mnistctl {
int run_fetch(const FetchOptions&) { throw RuntimeError("fetch: not implemented yet"); }
}  // namespace mnistctl
