// Small file-system helpers shared by every subcommand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

// Reads a whole regular file; throws UsageError naming the file when it can't, or when the
// path is a folder, FIFO, socket or device (refused before opening: a FIFO would block).
std::vector<uint8_t> read_file(const std::string& path);

// The first `max_bytes` bytes of a file (fewer if it is shorter; "" if it cannot be read):
// enough to tell what an existing output file is before replacing it.
std::string read_prefix(const std::string& path, size_t max_bytes);

// Writes atomically: a temporary file in the same folder, fsync, close (checked), rename over
// `path`, then fsync the folder. Any failure is a RuntimeError (exit 3) naming `path`.
// An interrupted write never leaves a truncated file under the final name. A target that
// exists and is not a regular file (/dev/null, a FIFO) is written in place instead.
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

// fsync()s the folder that holds `path`, so that a rename or a new entry in it is durable.
// Throws RuntimeError (exit 3) naming the path when that fails.
void sync_folder_of(const std::string& path);

// One writer per folder: an exclusive flock on `<folder>/.lock`, held for the object's life
// and released by the kernel if the process dies (no stale lock to clean up). The file
// holds the holder's process id. A folder already locked by another process is refused with
// UsageError (exit 2) naming that process; failing to create the lock is a RuntimeError.
// `what` names the folder's role in the message ("the run folder").
class FolderLock {
 public:
  FolderLock(const std::string& folder, const std::string& what);
  // Throws the same UsageError if another process holds the folder's lock, without taking
  // the lock or creating the lock file: for refusing a folder and leaving it as it was.
  static void check_free(const std::string& folder, const std::string& what);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

// Creates a folder and its parents; throws RuntimeError (exit 3) naming it on failure, and
// UsageError (exit 2) where a file already has that name.
void make_dirs(const std::string& path);

// The data root: $MNISTCTL_DATA, else $XDG_CACHE_HOME/mnistctl, else ~/.cache/mnistctl.
std::string default_data_root();

// The folder that holds the running executable (for finding sibling files).
std::string executable_dir();

// Physical memory of the machine in bytes (a huge value where it cannot be read).
double physical_memory_bytes();

}  // namespace mnistctl
