// The run folder's files: refusing, replacing, creating and writing them (run_folder.h).
#include "train/run_folder.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <functional>
#include <regex>
#include <sstream>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "train/checkpoint.h"

namespace mnistctl {
namespace fs = std::filesystem;

namespace {

// The files directly in a run folder that belong to a run (besides checkpoints/*.ckpt).
// report.html is `mnistctl report`'s default output: it describes this run, so it goes with it.
const char* const kRunFiles[] = {"last.ckpt", "best.ckpt", "metrics.jsonl", "metrics.csv", "config.yaml", "report.html"};

const char* const kCsvHeader =
    "epoch,train_accuracy,loss,val_accuracy,val_loss,lr,time_s,val_time_s,images_per_s,elapsed_s";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool starts_with(const std::string& s, const std::string& head) { return s.compare(0, head.size(), head) == 0; }

// Whether the file `name` (relative to the run folder) was written by a mnistctl run, told by
// its first bytes: a file of the same name that is not (a user's config.yaml or notes) is
// never replaced or removed. `run_evidence`: the folder holds a checkpoint or metrics that a
// run wrote, which also vouches for a config.yaml from before config.yaml had its marker line.
bool written_by_run(const fs::path& p, const std::string& name, bool run_evidence) {
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) return false;
  const std::string head = read_prefix(p.string(), 4096);
  if (size > 0 && head.empty()) return false;  // unreadable: not ours to judge, so not ours to remove
  if (ends_with(name, ".ckpt")) return starts_with(head, std::string(kCheckpointMagic, sizeof kCheckpointMagic));
  // A run killed while starting may leave its logs empty.
  if (name == "metrics.jsonl") return head.empty() || starts_with(head, "{\"type\":\"");
  if (name == "metrics.csv") return head.empty() || starts_with(head, "epoch,");
  if (name == "report.html") return head.find(kReportMarker) != std::string::npos;
  if (name == "config.yaml") return starts_with(head, kRunConfigMarker) || run_evidence;
  return false;
}

// Every path where a run keeps a file, relative to `dir`, that exists: kRunFiles, then
// checkpoints/*.ckpt in name order.
std::vector<std::string> run_paths(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return found;
  for (const char* f : kRunFiles)
    if (fs::exists(fs::path(dir) / f, ec)) found.push_back(f);
  const fs::path ckpts = fs::path(dir) / "checkpoints";
  std::vector<std::string> epochs;
  if (fs::is_directory(ckpts, ec))
    for (fs::directory_iterator it(ckpts, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".ckpt") epochs.push_back("checkpoints/" + it->path().filename().string());
  std::sort(epochs.begin(), epochs.end());
  found.insert(found.end(), epochs.begin(), epochs.end());
  return found;
}

// Splits run_paths into the run's own files (and folders standing where a run keeps a file,
// which begin() refuses by name) and files a run did not write.
void classify(const std::string& dir, std::vector<std::string>* own, std::vector<std::string>* foreign) {
  const std::vector<std::string> paths = run_paths(dir);
  bool evidence = false;
  for (const auto& f : paths) {
    std::error_code ec;
    const fs::path p = fs::path(dir) / f;
    if (f != "config.yaml" && f != "report.html" && fs::is_regular_file(p, ec) && fs::file_size(p, ec) > 0 &&
        written_by_run(p, f, false))
      evidence = true;
  }
  for (const auto& f : paths) {
    std::error_code ec;
    const fs::path p = fs::path(dir) / f;
    if (!fs::is_regular_file(p, ec) || written_by_run(p, f, evidence)) {
      if (own) own->push_back(f);
    } else if (foreign) {
      foreign->push_back(f);
    }
  }
}

}  // namespace

std::string default_run_dir(const Config& cfg) {
  const std::string& ds = cfg.data.dataset;
  if (cfg.name == ds || ends_with(cfg.name, "-" + ds)) return "runs/" + cfg.name;
  return "runs/" + cfg.name + "-" + ds;
}

std::vector<std::string> run_files(const std::string& dir) {
  std::vector<std::string> own;
  classify(dir, &own, nullptr);
  return own;
}

std::vector<std::string> foreign_files(const std::string& dir) {
  std::vector<std::string> foreign;
  classify(dir, nullptr, &foreign);
  return foreign;
}

void check_fresh_run(const std::string& dir, bool overwrite) {
  const std::vector<std::string> foreign = foreign_files(dir);
  if (!foreign.empty())
    throw UsageError(fmt::format("{}/{}: exists and was not written by a mnistctl run; train leaves it alone and "
                                 "stops (move it away, or train into another --out)",
                                 dir, foreign.front()));
  if (overwrite) return;
  std::vector<std::string> files = run_files(dir);
  if (files.empty()) return;
  const std::string listed =
      files.front() + (files.size() > 1 ? fmt::format(" and {} more", files.size() - 1) : std::string());
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "last.ckpt", ec)) {
    if (const std::string kept = newest_epoch_checkpoint(dir); !kept.empty())
      throw UsageError(fmt::format("{} holds a run with no last.ckpt but with {} (was the write of last.ckpt cut "
                                   "short, by a full disk?): copy that file to {}/last.ckpt and continue with "
                                   "--resume, or train into another --out",
                                   dir, kept, dir));
    // nothing to resume: stopped before its first checkpoint
    throw UsageError(fmt::format("{} holds a run that has no checkpoint yet ({}): replace it with --overwrite, "
                                 "or train into another --out",
                                 dir, listed));
  }
  throw UsageError(fmt::format("{} already holds a run ({}): continue it with --resume, replace it with "
                               "--overwrite, or train into another --out",
                               dir, listed));
}

std::string newest_epoch_checkpoint(const std::string& dir) {
  const std::string head = "checkpoints/epoch-", tail = ".ckpt";
  std::string newest;
  long best = -1;
  for (const std::string& f : run_files(dir)) {
    if (f.size() <= head.size() + tail.size() || !starts_with(f, head) || !ends_with(f, tail)) continue;
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(dir) / f, ec)) continue;  // run_files lists a folder at a file's name too
    const std::string digits = f.substr(head.size(), f.size() - head.size() - tail.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    if (const long e = std::stol(digits); e > best) best = e, newest = (fs::path(dir) / f).string();
  }
  return newest;
}

std::string latest_run(const std::string& parent) {
  std::error_code ec;
  std::string best;
  fs::file_time_type best_time;
  if (!fs::is_directory(parent, ec)) return best;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    const fs::path last = it->path() / "last.ckpt";
    if (!fs::is_regular_file(last, e2)) continue;
    fs::file_time_type t = fs::last_write_time(last, e2);
    if (e2) continue;
    // Newest wins; on a tie the name decides, so the choice does not depend on listing order.
    const std::string name = it->path().string();
    if (best.empty() || t > best_time || (t == best_time && name < best)) {
      best = name;
      best_time = t;
    }
  }
  return best;
}

RunFolder::RunFolder(std::string dir) : dir_(std::move(dir)) {}

std::string RunFolder::last_path() const { return dir_ + "/last.ckpt"; }
std::string RunFolder::best_path() const { return dir_ + "/best.ckpt"; }
std::string RunFolder::epoch_path(int64_t epoch) const {
  return fmt::format("{}/checkpoints/epoch-{:03d}.ckpt", dir_, epoch);
}

void RunFolder::check_not_in_use(const std::string& dir) { FolderLock::check_free(dir, "the run folder"); }

void RunFolder::lock() {
  // A folder that does not exist yet is created (and locked) by begin(): a run that fails
  // before training leaves nothing behind.
  std::error_code ec;
  if (!lock_ && fs::is_directory(dir_, ec)) lock_.emplace(dir_, "the run folder");
}

namespace {

// The records of metrics.jsonl and rows of metrics.csv that a resumed run keeps: those at or
// before its checkpoint. Returns how many were dropped (the files are rewritten only then).
int64_t trim_logs_to(const std::string& dir, int64_t epochs_done, int64_t batch) {
  static const std::regex epoch_record(R"(^\{"type":"epoch","epoch":(\d+),)");
  static const std::regex batch_record(R"(^\{"type":"batch","epoch":(\d+),"batch":(\d+),)");
  const std::pair<int64_t, int64_t> at{epochs_done, batch};
  auto past = [&](int64_t epochs, int64_t batches) { return std::pair<int64_t, int64_t>{epochs, batches} > at; };
  int64_t dropped = 0;
  auto rewrite = [&](const std::string& path, const std::function<bool(const std::string&)>& keep) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return;
    const std::vector<uint8_t> bytes = read_file(path);
    std::istringstream in(std::string(bytes.begin(), bytes.end()));
    std::string kept, line;
    int64_t here = 0;
    while (std::getline(in, line)) {
      if (keep(line))
        kept += line + '\n';
      else
        ++here;
    }
    if (here == 0) return;
    write_file_atomic(path, kept);
    dropped += here;
  };
  rewrite(dir + "/metrics.jsonl", [&](const std::string& line) {
    std::smatch m;
    if (std::regex_search(line, m, epoch_record)) return !past(std::stoll(m[1]), 0);
    if (std::regex_search(line, m, batch_record)) return !past(std::stoll(m[1]) - 1, std::stoll(m[2]));
    return true;  // the summary and anything else stay
  });
  rewrite(dir + "/metrics.csv", [&](const std::string& line) {
    int64_t epoch = 0;
    const auto [end, err] = std::from_chars(line.data(), line.data() + line.size(), epoch);
    if (err != std::errc() || end == line.data() || *end != ',') return true;  // the header
    return !past(epoch, 0);
  });
  return dropped;
}

}  // namespace

void RunFolder::begin(bool resume, bool overwrite, const std::string& config_yaml, int64_t epochs_done,
                      int64_t batch) {
  if (!lock_) {
    make_dirs(dir_);
    lock_.emplace(dir_, "the run folder");
  }
  if (!resume) {
    check_fresh_run(dir_, overwrite);  // again: another process may have trained here since
    std::vector<std::string> old = run_files(dir_);
    // Check every file first, so that a folder where a file belongs stops the run before
    // anything is deleted.
    for (const auto& f : old) {
      std::error_code ec;
      if (fs::is_directory(fs::path(dir_) / f, ec))
        throw UsageError(fmt::format("{}/{}: is a folder where the run keeps a file; move it away first", dir_, f));
    }
    std::error_code ec;
    if (fs::exists(fs::path(dir_) / "checkpoints", ec) && !fs::is_directory(fs::path(dir_) / "checkpoints", ec))
      throw UsageError(fmt::format("{}/checkpoints: is a file where the run keeps a folder; move it away first", dir_));
    if (!old.empty()) {
      int64_t epochs = 0;
      std::string named;
      for (const auto& f : old) {
        std::error_code ec;
        fs::remove(fs::path(dir_) / f, ec);
        if (ec) throw RuntimeError(fmt::format("{}/{}: cannot remove: {}", dir_, f, ec.message()));
        if (f.rfind("checkpoints/", 0) == 0)
          ++epochs;
        else
          named += (named.empty() ? "" : ", ") + f;
      }
      if (epochs > 0)
        named += fmt::format("{}{} checkpoint{} in checkpoints/", named.empty() ? "" : ", ", epochs,
                             epochs == 1 ? "" : "s");
      out_line(fmt::format("--overwrite: removed the earlier run in {} ({})", dir_, named));
    }
  }
  make_dirs(dir_ + "/checkpoints");
  write_file_atomic(dir_ + "/config.yaml", kRunConfigMarker + config_yaml);

  if (resume) {
    const int64_t dropped = trim_logs_to(dir_, epochs_done, batch);
    if (dropped > 0)
      out_line(fmt::format("note: {} records in metrics.jsonl and metrics.csv came after the checkpoint (written "
                           "before the run was stopped): dropped, the resumed run writes them again",
                           dropped));
  }
  const std::string jl = dir_ + "/metrics.jsonl", csv = dir_ + "/metrics.csv";
  jsonl_.open(jl, std::ios::app);
  if (!jsonl_) throw RuntimeError(fmt::format("{}: cannot open for writing", jl));
  std::error_code ec;
  const bool header = !fs::exists(csv, ec) || fs::file_size(csv, ec) == 0;
  csv_.open(csv, std::ios::app);
  if (!csv_) throw RuntimeError(fmt::format("{}: cannot open for writing", csv));
  if (header) {
    csv_ << kCsvHeader << '\n';
    csv_.flush();
    if (!csv_) throw RuntimeError(fmt::format("{}: write failed (disk full?)", csv));
  }
}

void RunFolder::log_json(const std::string& record) {
  jsonl_ << record << '\n';
  jsonl_.flush();
  if (!jsonl_) throw RuntimeError(fmt::format("{}/metrics.jsonl: write failed (disk full?)", dir_));
}

void RunFolder::log_epoch(const EpochLog& r) {
  log_json(fmt::format("{{\"type\":\"epoch\",\"epoch\":{},\"time_s\":{:.4f},\"images_per_s\":{:.1f},"
                       "\"train_accuracy\":{:.6f},\"loss\":{:.6f},\"val_accuracy\":{:.6f},\"val_loss\":{:.6f},"
                       "\"val_time_s\":{:.4f},\"lr\":{:g},\"elapsed_s\":{:.4f}}}",
                       r.epoch, r.time_s, r.images_per_s, r.train_accuracy, r.loss, r.val_accuracy, r.val_loss,
                       r.val_time_s, r.lr, r.elapsed_s));
  csv_ << fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:g},{:.4f},{:.4f},{:.1f},{:.4f}\n", r.epoch,
                      r.train_accuracy, r.loss, r.val_accuracy, r.val_loss, r.lr, r.time_s, r.val_time_s,
                      r.images_per_s, r.elapsed_s);
  csv_.flush();
  if (!csv_) throw RuntimeError(fmt::format("{}/metrics.csv: write failed (disk full?)", dir_));
}

void RunFolder::save_checkpoint(const std::string& bytes, int64_t epoch, bool end_of_epoch, bool best) {
  // last.ckpt last: it is what --resume continues from, so a write that fails before it (a
  // full disk) leaves the run at the previous checkpoint, and the resume redoes the epoch and
  // writes all its files. (last.ckpt first would carry the new best epoch while best.ckpt
  // kept the old one for good.) A run whose very first last.ckpt failed keeps its epoch file,
  // which the messages for a missing last.ckpt name (newest_epoch_checkpoint).
  if (end_of_epoch) {
    write_file_atomic(epoch_path(epoch), bytes);
    if (best) write_file_atomic(best_path(), bytes);
  }
  write_file_atomic(last_path(), bytes);
}

}  // namespace mnistctl
