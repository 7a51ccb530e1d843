// `mnistctl fetch`: the CLI face of data/fetch.h. Per-file lines (and any progress bar) go to
// stderr; the final line, naming the folder, goes to stdout so that scripts can take it.
#include <cstdio>

#include <fmt/format.h>

#include "commands/commands.h"
#include "core/error.h"
#include "data/fetch.h"

namespace mnistctl {

int run_fetch(const FetchOptions& o) {
  FetchRequest req;
  req.dataset = o.dataset;
  req.data_root = o.data_dir;
  req.mirrors = o.mirrors;
  req.force = o.force;
  std::string dir = fetch_dataset(req);
  fmt::print("{}: 4 files verified in {}\n", req.dataset, dir);
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace mnistctl
