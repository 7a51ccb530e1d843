// An output file written piece by piece that appears under its name only when complete: the
// streaming counterpart of write_file_atomic (core/fs.h), for outputs too large to build in
// memory first (predict over millions of images).
//
// The data goes to "<path>.tmp.<pid>" in the same folder; commit() fsyncs it, checks close(),
// renames it over `path` and fsyncs the folder. A writer destroyed without commit() (an
// error, an exception) removes its temporary file, so a failed run leaves the previous file
// (if any) untouched, and so does a process ended by SIGINT, SIGTERM or SIGHUP where nothing
// else handles them (only SIGKILL can leave a temporary file). A target that exists and is not a regular file (/dev/null, a FIFO) is
// written in place. Opening fails at once (before any work); every failure is a RuntimeError
// (exit 3) naming `path`, except a folder in its place (exit 2). A symbolic link at `path` is
// written through: its target is replaced, the link stays. write_file_atomic is this class
// with one write.
#pragma once

#include <cstddef>
#include <string>

namespace mnistctl {

// The file that a write to `path` replaces: `path` itself, or where its symbolic links lead
// (relative targets from the link's folder; a dangling link's target, to be created). A
// symbolic link is written through, as a shell's `>` and cp write through one: its target gets
// the new file and the link stays (a rename over the link would replace it with a file and
// leave the target as it was). More than 40 links in a row: UsageError.
std::string through_links(const std::string& path);

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(const std::string& data) { write(data.data(), data.size()); }
  void commit();
  // The file it makes, and where the data goes until commit(): the temporary file, or `path`
  // when written in place.
  const std::string& path() const { return path_; }
  const std::string& working_path() const { return tmp_.empty() ? path_ : tmp_; }

 private:
  std::string path_, target_, tmp_;  // target_: path_ through its symbolic links; tmp_ empty: written in place
  int fd_ = -1;
  int slot_ = -1;  // its entry in the list a Ctrl-C removes (atomic_file.cpp)
  bool committed_ = false;
};

}  // namespace mnistctl
