// `mnistctl fetch`: get a dataset's four files into <data root>/<dataset>/, verified by SHA-256.
//
// Mirrors are tried in order, per file:
//   1. the caller's (--mirror, repeatable),
//   2. $MNISTCTL_MIRROR: one or more, separated by whitespace or commas,
//   3. the built-in ones (catalog.h): local folders a system package installed, then the
//      dataset's download sites. MNISTCTL_NO_BUILTIN_MIRRORS=1 leaves them out (tests use it so
//      that they never reach for the internet).
// A mirror is a base URL (http:// or https://, through libcurl), a file:///absolute URL or a
// plain folder path; the file name is appended to it. Any other scheme (ftp://, s3://, ...) is
// a UsageError naming the mirror, raised before anything is tried. A local mirror whose folder
// is missing is reported as "<folder>: folder not found" (not as a missing file).
//
// Safety: each download goes to a temporary file in the destination folder and is renamed
// into place only after its checksum (and size) match; a mismatch discards it and moves on to
// the next mirror. A file already present that verifies is not downloaded again (unless
// force). Downloads are capped a little above the known size. Transient failures (timeouts,
// cut connections, HTTP 5xx) are retried a bounded number of times.
// Tunables (environment, mainly for tests and slow links):
//   MNISTCTL_FETCH_CONNECT_SECONDS  connect timeout, default 20
//   MNISTCTL_FETCH_STALL_SECONDS    abort when under 1 byte/s for this long, default 30
//   MNISTCTL_FETCH_RETRIES          extra attempts per mirror for transient failures, default 2
// When no mirror has a file: RuntimeError (exit 3), one line listing each source tried for
// that file once, with why, and ending with an "offline?" hint when the built-in internet
// mirrors were among them. The per-mirror failures are not also printed on stderr then (they
// are printed only when a later mirror provides the file). Fetching stops at that file.
// Housekeeping: a failed fetch removes the folders it created itself while they are still
// empty, and every fetch first removes "<file>.part.<pid>" temporaries whose process is gone
// (left by a fetch that was killed).
#pragma once

#include <string>
#include <vector>

#include "data/catalog.h"

namespace mnistctl {

struct FetchRequest {
  std::string dataset = "mnist";
  std::string data_root;              // "" -> default_data_root()
  std::vector<std::string> mirrors;   // tried first
  bool force = false;
};

// Downloads (or copies) the four files into dataset_dir(); returns the folder.
std::string fetch_dataset(const FetchRequest& req);

// The same for any catalog entry, into `dir` (tests use small made-up datasets). Mirrors are
// `req.mirrors`, then $MNISTCTL_MIRROR, then info's built-in ones.
std::string fetch_files(const DatasetInfo& info, const std::string& dir, const FetchRequest& req);

// The mirror list fetch_files will try, in order, duplicates removed.
std::vector<std::string> mirror_list(const DatasetInfo& info, const std::vector<std::string>& first);

}  // namespace mnistctl
