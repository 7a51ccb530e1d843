// Small file-system helpers shared by every subcommand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

// Reads a whole file; throws UsageError naming the file when it can't.
std::vector<uint8_t> read_file(const std::string& path);

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

// Creates a folder and its parents; throws RuntimeError naming it on failure.
void make_dirs(const std::string& path);

// The data root: $MNISTCTL_DATA, else $XDG_CACHE_HOME/mnistctl, else ~/.cache/mnistctl.
std::string default_data_root();

// The folder that holds the running executable (for finding sibling files).
std::string executable_dir();

// Physical memory of the machine in bytes (a huge value where it cannot be read).
double physical_memory_bytes();

}  // namespace mnistctl
