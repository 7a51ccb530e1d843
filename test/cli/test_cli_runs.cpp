// The run folder through the binary, on small slices of real MNIST: a run is never lost (a
// fresh run into a folder holding one is refused, --overwrite deletes only once training can
// start), the default folder names network and dataset, `--resume` alone picks the newest
// run, Ctrl-C names the command that continues (and a closed stdout pipe stops the same way;
// a stalled one does not hold it),
// metrics.csv and the closing summary, the
// progress bar on a terminal, early stopping and stop_at_accuracy (exact across a resume),
// best.ckpt and --checkpoint best|last|FILE. These tests need real MNIST and fail without it.
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "cli/run_files.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/run_folder.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

// A quick MLP recipe (xavier init learns within one small epoch). `out` empty: no --out.
std::vector<std::string> quick_mlp(const std::string& root, const std::string& out, int epochs, int limit = 3000) {
  std::vector<std::string> a = {"train", "--config", config_file("mlp.yaml"), "--data-dir", root,
                                "--epochs", std::to_string(epochs), "--threads", "2",
                                "--set", "data.train_limit=" + std::to_string(limit), "--set", "init.type=xavier",
                                "--set", "train.log_interval=10"};
  if (!out.empty()) a.insert(a.end(), {"--out", out});
  return a;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The records of metrics.jsonl of one type.
// mnistctl with `args` under `bash -c script`, where "$0" is mnistctl and "$@" the arguments.
RunResult run_in_bash(const std::string& script, const std::vector<std::string>& args,
                      const std::function<void(const std::string&, pid_t)>& on_stdout_line = {}) {
  std::vector<std::string> a = {"-c", script, MNISTCTL_EXE};
  a.insert(a.end(), args.begin(), args.end());
  return run_program("/bin/bash", a, on_stdout_line);
}

std::vector<std::string> records(const std::string& run, const std::string& type) {
  std::vector<std::string> out;
  for (const auto& l : lines_of(read_text(run + "/metrics.jsonl")))
    if (l.find("\"type\":\"" + type + "\"") != std::string::npos) out.push_back(l);
  return out;
}

// metrics.csv as a header and rows of named numbers.
struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<double>> rows;
  int headers = 0;  // lines that are the header
  double at(size_t row, const std::string& col) const {
    auto it = std::find(header.begin(), header.end(), col);
    REQUIRE(it != header.end());
    return rows.at(row).at(static_cast<size_t>(it - header.begin()));
  }
};
Csv read_csv(const std::string& path) {
  Csv c;
  std::vector<std::string> ls = lines_of(read_text(path));
  REQUIRE(!ls.empty());
  auto split = [](const std::string& l) {
    std::vector<std::string> f;
    std::stringstream ss(l);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    return f;
  };
  c.header = split(ls[0]);
  for (const auto& l : ls) {
    if (l == ls[0]) {
      ++c.headers;
      continue;
    }
    std::vector<double> row;
    for (const auto& x : split(l)) row.push_back(std::stod(x));
    REQUIRE(row.size() == c.header.size());
    c.rows.push_back(row);
  }
  return c;
}

bool one_line(const RunResult& r) { return std::count(r.err.begin(), r.err.end(), '\n') == 1; }

// Runs the binary in `dir` (the run folder's default is relative to the working folder).
struct InDir {
  explicit InDir(const std::string& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~InDir() { fs::current_path(old_); }
  fs::path old_;
};

// Runs the binary with stdout and stderr on a pseudo-terminal, CI set or unset; returns
// everything the terminal received and the exit code.
RunResult run_on_terminal(const std::vector<std::string>& args, bool ci, unsigned short columns = 0) {
  int master = -1;
  struct winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = columns;
  pid_t pid = forkpty(&master, nullptr, nullptr, columns > 0 ? &ws : nullptr);
  if (pid == 0) {
    if (ci)
      setenv("CI", "true", 1);
    else
      unsetenv("CI");
    exec_program(MNISTCTL_EXE, args);
  }
  RunResult r;
  if (pid < 0) return r;
  char buf[4096];
  for (;;) {
    ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) {
      r.out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EIO once the child has closed the terminal
  }
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = exit_code(status);
  return r;
}

}  // namespace

TEST_CASE("a fresh train never replaces a run without --overwrite, and --overwrite deletes only when training starts") {
  std::string root = data_root("runs-refuse-data");
  std::string dir = scratch_dir("runs-refuse"), out = dir + "/run";
  RunResult first = run_mnistctl(quick_mlp(root, out, 2));
  INFO(first.out << first.err);
  REQUIRE(first.code == 0);
  const std::string last = read_text(out + "/last.ckpt"), jsonl = read_text(out + "/metrics.jsonl");
  REQUIRE(!last.empty());

  // The same command again: refused in one line naming the folder and the ways out; nothing
  // touched, not even a lock file added (a run copied without its .lock stays without one).
  fs::remove(out + "/.lock");
  RunResult again = run_mnistctl(quick_mlp(root, out, 1));
  INFO(again.out << again.err);
  CHECK(again.code == 2);
  CHECK(one_line(again));
  CHECK(again.err.find(out + " already holds a run") != std::string::npos);
  CHECK(again.err.find("--resume") != std::string::npos);
  CHECK(again.err.find("--overwrite") != std::string::npos);
  CHECK(again.err.find("--out") != std::string::npos);
  CHECK(read_text(out + "/last.ckpt") == last);
  CHECK(read_text(out + "/metrics.jsonl") == jsonl);
  CHECK(!fs::exists(out + "/.lock"));

  // --dry-run shows the same verdict without failing.
  RunResult dry = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--out", out, "--dry-run"});
  CHECK(dry.code == 0);
  CHECK(dry.out.find("run folder " + out + " (holds a run: train refuses without --resume or --overwrite)") !=
        std::string::npos);

  // --overwrite with no data: the run fails before training and deletes nothing.
  auto broken = quick_mlp(dir + "/no-data", out, 1);
  broken.push_back("--overwrite");
  RunResult nodata = run_mnistctl(broken);
  CHECK(nodata.code == 2);
  CHECK(read_text(out + "/last.ckpt") == last);
  CHECK(read_text(out + "/metrics.jsonl") == jsonl);
  CHECK(fs::exists(out + "/checkpoints/epoch-002.ckpt"));

  // --overwrite where config.yaml has become a folder: stops before deleting anything.
  std::string moved = dir + "/config.yaml.saved";
  fs::rename(out + "/config.yaml", moved);
  fs::create_directories(out + "/config.yaml/inside");
  auto over = quick_mlp(root, out, 1);
  over.push_back("--overwrite");
  RunResult blocked = run_mnistctl(over);
  INFO(blocked.out << blocked.err);
  CHECK(blocked.code == 2);
  CHECK(blocked.err.find("config.yaml: is a folder") != std::string::npos);
  CHECK(read_text(out + "/last.ckpt") == last);
  fs::remove_all(out + "/config.yaml");
  fs::rename(moved, out + "/config.yaml");

  // --resume and --overwrite contradict each other.
  auto both = quick_mlp(root, out, 1);
  both.insert(both.end(), {"--overwrite", "--resume"});
  CHECK(run_mnistctl(both).code == 2);

  // A report.html that mnistctl report did not write is the user's: even --overwrite stops
  // before deleting anything, and names it.
  std::ofstream(out + "/notes.txt") << "my notes\n";
  std::ofstream(out + "/report.html") << "<html>my own page</html>\n";
  RunResult mine = run_mnistctl(over);
  INFO(mine.out << mine.err);
  CHECK(mine.code == 2);
  CHECK(one_line(mine));
  CHECK(mine.err.find(out + "/report.html: exists and was not written by a mnistctl run") != std::string::npos);
  CHECK(read_text(out + "/report.html") == "<html>my own page</html>\n");
  CHECK(read_text(out + "/last.ckpt") == last);

  // --overwrite that can train: says what it removed and leaves only the new run (the old
  // run's report.html with it: it described that run).
  std::ofstream(out + "/report.html") << "<html><head>" << kReportMarker << "</head>the old run</html>\n";
  RunResult replaced = run_mnistctl(over);
  INFO(replaced.out << replaced.err);
  REQUIRE(replaced.code == 0);
  CHECK(replaced.out.find("--overwrite: removed the earlier run in " + out) != std::string::npos);
  CHECK(replaced.out.find("report.html") != std::string::npos);
  CHECK(!fs::exists(out + "/report.html"));
  CHECK(!fs::exists(out + "/checkpoints/epoch-002.ckpt"));
  CHECK(fs::exists(out + "/checkpoints/epoch-001.ckpt"));
  CHECK(records(out, "epoch").size() == 1);
  CHECK(read_csv(out + "/metrics.csv").rows.size() == 1);
  CHECK(read_text(out + "/notes.txt") == "my notes\n");  // not a run's file: kept
}

TEST_CASE("a folder of the user's own files is not a run: train refuses to replace them, even with --overwrite") {
  // A project folder with the user's config (used as --config) and a page of their own: the
  // names are a run's, the files are not. Nothing is replaced or removed, with or without
  // --overwrite, and the error names the file.
  std::string root = data_root("runs-mine-data");
  std::string out = scratch_dir("runs-mine") + "/project";
  fs::create_directories(out);
  const std::string config = read_text(config_file("mlp.yaml"));
  std::ofstream(out + "/config.yaml") << config;
  std::ofstream(out + "/report.html") << "<html>my notes</html>\n";
  for (bool overwrite : {false, true}) {
    auto args = quick_mlp(root, out, 1);
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--config") args[i + 1] = out + "/config.yaml";
    if (overwrite) args.push_back("--overwrite");
    RunResult r = run_mnistctl(args);
    INFO(r.out << r.err);
    CHECK(r.code == 2);
    CHECK(one_line(r));
    CHECK(r.err.find(out + "/config.yaml: exists and was not written by a mnistctl run") != std::string::npos);
    CHECK(read_text(out + "/config.yaml") == config);
    CHECK(read_text(out + "/report.html") == "<html>my notes</html>\n");
    CHECK(!fs::exists(out + "/metrics.jsonl"));
  }
  // A run's own config.yaml carries the marker line, and --overwrite replaces that run.
  std::string run = scratch_dir("runs-mine") + "/run";
  RunResult first = run_mnistctl(quick_mlp(root, run, 1));
  REQUIRE(first.code == 0);
  CHECK(read_text(run + "/config.yaml").rfind(kRunConfigMarker, 0) == 0);
  auto again = quick_mlp(root, run, 1);
  again.push_back("--overwrite");
  CHECK(run_mnistctl(again).code == 0);
}

TEST_CASE("a folder whose run stopped before its first checkpoint is refused with --overwrite as the way out") {
  std::string root = data_root("runs-nockpt-data");
  std::string out = scratch_dir("runs-nockpt") + "/run";
  fs::create_directories(out);
  std::ofstream(out + "/config.yaml") << "name: mlp\n";
  std::ofstream(out + "/metrics.jsonl") << "{\"type\":\"start\"}\n";
  RunResult r = run_mnistctl(quick_mlp(root, out, 1));
  INFO(r.out << r.err);
  CHECK(r.code == 2);
  CHECK(one_line(r));
  CHECK(r.err.find(out + " holds a run that has no checkpoint yet (metrics.jsonl and 1 more): replace it with "
                         "--overwrite") != std::string::npos);
  CHECK(r.err.find("--resume") == std::string::npos);  // there is nothing to resume
  CHECK(read_text(out + "/metrics.jsonl") == "{\"type\":\"start\"}\n");
}

TEST_CASE("a failed checkpoint write leaves last.ckpt at the previous epoch, and a lost last.ckpt is named, not --overwrite") {
  std::string root = data_root("runs-ckptfail-data");
  std::string out = scratch_dir("runs-ckptfail") + "/run";
  REQUIRE(run_mnistctl(quick_mlp(root, out, 1)).code == 0);
  // Epoch 2's file cannot be written (a folder stands at its name, as a full disk would fail
  // it): last.ckpt, written last, still holds epoch 1, so the resume redoes epoch 2 and writes
  // all its files.
  fs::create_directories(out + "/checkpoints/epoch-002.ckpt/x");
  std::vector<std::string> resume = quick_mlp(root, out, 2);
  resume.push_back("--resume");
  RunResult r = run_mnistctl(resume);
  INFO(r.out << r.err);
  CHECK(r.code == 2);  // a folder at a file's name is a usage error (a full disk: 3)
  CHECK(r.err.find(out + "/checkpoints/epoch-002.ckpt: is a folder") != std::string::npos);
  CHECK(checkpoint_position(out + "/last.ckpt") == RunPosition{1, 0});
  fs::remove_all(out + "/checkpoints/epoch-002.ckpt");
  RunResult redo = run_mnistctl(resume);
  INFO(redo.out << redo.err);
  REQUIRE(redo.code == 0);
  CHECK(checkpoint_position(out + "/last.ckpt") == RunPosition{2, 0});
  CHECK(checkpoint_position(out + "/checkpoints/epoch-002.ckpt") == RunPosition{2, 0});
  fs::remove(out + "/checkpoints/epoch-002.ckpt");

  // last.ckpt lost beside an epoch checkpoint: every command names that file, and none
  // offers --overwrite, which would delete it.
  fs::remove(out + "/last.ckpt");
  const std::string kept = out + "/checkpoints/epoch-001.ckpt";
  fs::create_directories(out + "/checkpoints/epoch-003.ckpt");  // a folder at a later epoch's name is no checkpoint
  RunResult again = run_mnistctl(resume);
  CHECK(again.code == 2);
  CHECK(again.err == "mnistctl: --resume: " + out + " has no last.ckpt, but " + kept +
                         " holds a finished epoch (was the write of last.ckpt cut short, by a full disk?): copy that "
                         "file to " + out + "/last.ckpt and resume again\n");
  RunResult fresh = run_mnistctl(quick_mlp(root, out, 2));
  CHECK(fresh.code == 2);
  CHECK(fresh.err.find("holds a run with no last.ckpt but with " + kept) != std::string::npos);
  CHECK(fresh.err.find("--overwrite") == std::string::npos);
  RunResult ev = run_mnistctl({"eval", "--model", out, "--data-dir", root});
  CHECK(ev.code == 2);
  CHECK(ev.err.find("no last.ckpt in this run folder; its newest checkpoint is " + kept + ": give that file instead") !=
        std::string::npos);
  for (const char* which : {"last", "best"}) {  // best.ckpt gone too: neither says "has not finished an epoch"
    if (std::string(which) == "best") fs::rename(out + "/best.ckpt", out + "/best-kept.ckpt");
    RunResult named = run_mnistctl({"eval", "--model", out, "--checkpoint", which, "--data-dir", root});
    CHECK(named.code == 2);
    CHECK(named.err.find("no " + std::string(which) + ".ckpt in this run folder (its newest checkpoint is " + kept +
                         ": give that file instead)") != std::string::npos);
  }
  fs::rename(out + "/best-kept.ckpt", out + "/best.ckpt");
  RunResult inf = run_mnistctl({"info", out});
  CHECK(inf.code == 2);
  CHECK(inf.err.find("its newest checkpoint is " + kept) != std::string::npos);
  fs::remove(out + "/checkpoints/epoch-003.ckpt");
  // Copied back as the message says, the run goes on.
  fs::copy_file(kept, out + "/last.ckpt");
  RunResult resumed = run_mnistctl(resume);
  INFO(resumed.err);
  CHECK(resumed.code == 0);
  CHECK(checkpoint_position(out + "/last.ckpt") == RunPosition{2, 0});
}

TEST_CASE("the default run folder names network and dataset, --resume alone takes the newest run, nothing is written outside") {
  std::string root = data_root("runs-default-data");
  std::string cwd = scratch_dir("runs-default");
  InDir here(cwd);

  RunResult none = run_mnistctl({"train", "--resume", "--data-dir", root});
  CHECK(none.code == 2);
  CHECK(none.err.find("no run under runs/") != std::string::npos);

  RunResult dry = run_mnistctl({"train", "--config", config_file("lenet.yaml"), "--dry-run"});
  CHECK(dry.out.find("run folder runs/lenet-mnist\n") != std::string::npos);
  dry =
      run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--dry-run", "--set", "data.dataset=fashion-mnist"});
  CHECK(dry.out.find("run folder runs/mlp-fashion-mnist\n") != std::string::npos);

  RunResult lenet =
      run_mnistctl({"train", "--config", config_file("lenet.yaml"), "--data-dir", root, "--epochs", "1", "--set",
                    "data.train_limit=500", "--set", "data.test_limit=200", "--set", "init.type=xavier"});
  INFO(lenet.out << lenet.err);
  REQUIRE(lenet.code == 0);
  CHECK(fs::exists("runs/lenet-mnist/last.ckpt"));
  RunResult mlp = run_mnistctl(quick_mlp(root, "", 1, 1000));
  INFO(mlp.out << mlp.err);
  REQUIRE(mlp.code == 0);
  CHECK(fs::exists("runs/mlp-mnist/last.ckpt"));

  // The MLP ran last: --resume without --out or --config continues it, and says so.
  RunResult resumed = run_mnistctl({"train", "--resume", "--data-dir", root, "--epochs", "2"});
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.code == 0);
  CHECK(resumed.out.find("continuing the most recently written run, runs/mlp-mnist") != std::string::npos);
  CHECK(fs::exists("runs/mlp-mnist/checkpoints/epoch-002.ckpt"));
  CHECK(!fs::exists("runs/lenet-mnist/checkpoints/epoch-002.ckpt"));
  // --config picks its own folder (with the overrides the run was trained with: an edited
  // config is refused on --resume).
  RunResult by_config =
      run_mnistctl({"train", "--resume", "--config", config_file("lenet.yaml"), "--data-dir", root, "--epochs", "2",
                    "--set", "data.train_limit=500", "--set", "data.test_limit=200", "--set", "init.type=xavier"});
  INFO(by_config.out << by_config.err);
  REQUIRE(by_config.code == 0);
  CHECK(fs::exists("runs/lenet-mnist/checkpoints/epoch-002.ckpt"));

  // Everything the runs wrote is inside their folders.
  std::vector<std::string> top;
  for (const auto& e : fs::directory_iterator(".")) top.push_back(e.path().filename().string());
  CHECK(top == std::vector<std::string>{"runs"});
  std::vector<std::string> runs;
  for (const auto& e : fs::directory_iterator("runs")) runs.push_back(e.path().filename().string());
  std::sort(runs.begin(), runs.end());
  CHECK(runs == std::vector<std::string>{"lenet-mnist", "mlp-mnist"});
  for (const auto& e : fs::recursive_directory_iterator("runs"))
    CHECK(e.path().string().find(".tmp") == std::string::npos);
}

TEST_CASE("early stopping survives Ctrl-C and resume exactly, the message names the command, metrics.csv and best.ckpt") {
  std::string root = data_root("runs-es-data");
  std::string cfg = interruptible_config("runs-es-config");
  std::string whole = scratch_dir("runs-es-whole"), split = scratch_dir("runs-es-split") + "/run";
  // No epoch can beat the first by 0.5 in accuracy: the run stops after epoch 1 + patience (2) = 3.
  auto recipe = [&](const std::string& out) {
    return std::vector<std::string>{"train", "--config", cfg, "--data-dir", root, "--out", out, "--epochs", "10",
                                    "--threads", "2", "--set", "data.train_limit=2000", "--set",
                                    "train.early_stopping={metric: val_accuracy, patience: 2, min_delta: 0.5}"};
  };
  RunResult w = run_mnistctl(recipe(whole));
  INFO(w.out << w.err);
  REQUIRE(w.code == 0);
  CHECK(w.out.find("stopping after epoch 3: val_accuracy did not improve by more than 0.5 for 2 epochs") !=
        std::string::npos);
  CHECK(fs::exists(whole + "/checkpoints/epoch-003.ckpt"));
  CHECK(!fs::exists(whole + "/checkpoints/epoch-004.ckpt"));

  // The summary line: epochs, final and best validation accuracy with its epoch, times, where the model is.
  std::smatch m;
  REQUIRE(std::regex_search(w.out, m, std::regex("done: 3 epochs \\(stopped early\\); validation accuracy ([0-9.]+) "
                                                 "\\(best ([0-9.]+) at epoch ([0-9]+)\\); [0-9.]+ s of training, "
                                                 "[0-9.]+ s in all; model: (.*)/last.ckpt, best: (.*)/best.ckpt")));
  CHECK(m[4] == whole);
  CHECK(m[5] == whole);
  const int best_epoch = std::stoi(m[3]);
  Csv csv = read_csv(whole + "/metrics.csv");
  CHECK(csv.headers == 1);
  REQUIRE(csv.rows.size() == 3);
  double best_acc = 0;
  int argmax = 0;
  for (size_t i = 0; i < 3; ++i) {
    CHECK(csv.at(i, "epoch") == i + 1);
    if (csv.at(i, "val_accuracy") > best_acc) best_acc = csv.at(i, "val_accuracy"), argmax = static_cast<int>(i + 1);
  }
  CHECK(best_epoch == argmax);
  CHECK(std::stod(m[2]) == Approx(best_acc).margin(1e-4));
  CHECK(std::stod(m[1]) == Approx(csv.at(2, "val_accuracy")).margin(1e-4));
  // best.ckpt is that epoch's checkpoint, byte for byte.
  char name[32];
  std::snprintf(name, sizeof name, "/checkpoints/epoch-%03d.ckpt", best_epoch);
  CHECK(read_text(whole + "/best.ckpt") == read_text(whole + name));
  std::vector<std::string> summary = records(whole, "summary");
  REQUIRE(summary.size() == 1);
  CHECK(summary[0].find("\"stopped_by\":\"early_stopping\"") != std::string::npos);
  // The csv rows are the jsonl epoch records.
  std::vector<std::string> epochs = records(whole, "epoch");
  REQUIRE(epochs.size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK(json_number(epochs[i], "val_loss") == Approx(csv.at(i, "val_loss")).margin(1e-6));

  // Ctrl-C in epoch 2: exit 130 and a message naming the exact command that continues.
  bool sent = false;
  RunResult r = run_mnistctl(recipe(split), signal_at("Epoch[2] Batch[10/", SIGINT, sent));
  INFO(r.out << r.err);
  REQUIRE(sent);
  REQUIRE(r.code == 130);
  const std::string command = "mnistctl train --out " + split + " --resume --data-dir " + root + " --threads 2";
  REQUIRE(r.out.find("continue with: " + command + "\n") != std::string::npos);
  CHECK(load_checkpoint(split + "/last.ckpt").meta.at("es_wait") == "0");

  // That command, as printed, continues the run: it stops after epoch 3 with the very weights
  // of the uninterrupted run (the early-stopping count came back from the checkpoint).
  std::vector<std::string> args;
  std::istringstream words(command.substr(std::string("mnistctl ").size()));
  for (std::string word; words >> word;) args.push_back(word);
  RunResult resumed = run_mnistctl(args);
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.code == 0);
  CHECK(resumed.out.find("stopping after epoch 3") != std::string::npos);
  // Its training time counts both sessions, its wall time this one only, and the line says so.
  CHECK(std::regex_search(resumed.out, std::regex("[0-9.]+ s of training over all sessions, [0-9.]+ s in this one")));
  require_same_weights(whole + "/last.ckpt", split + "/last.ckpt");
  require_same_weights(whole + "/best.ckpt", split + "/best.ckpt");
  CHECK(load_checkpoint(split + "/best.ckpt").meta.at("epoch") == std::to_string(best_epoch));
  Csv csv2 = read_csv(split + "/metrics.csv");
  CHECK(csv2.headers == 1);  // appended on resume, header once
  REQUIRE(csv2.rows.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(csv2.at(i, "epoch") == i + 1);
    CHECK(csv2.at(i, "val_accuracy") == csv.at(i, "val_accuracy"));
  }

  // A stopped run stays stopped; changing the rule lets it go on.
  RunResult again = run_mnistctl({"train", "--out", split, "--resume", "--data-dir", root});
  CHECK(again.code == 0);
  CHECK(again.out.find("nothing to do") != std::string::npos);
  CHECK(read_csv(split + "/metrics.csv").rows.size() == 3);
  RunResult more = run_mnistctl({"train", "--out", split, "--resume", "--data-dir", root, "--epochs", "4", "--set",
                                 "train.early_stopping.patience=3"});
  INFO(more.out << more.err);
  CHECK(more.code == 0);
  CHECK(read_csv(split + "/metrics.csv").rows.size() == 4);

  // eval and predict read best, last, or any checkpoint file.
  RunResult eb = run_mnistctl({"eval", "--model", whole, "--checkpoint", "best", "--data-dir", root, "--json"});
  INFO(eb.err);
  REQUIRE(eb.code == 0);
  CHECK(json_number(eb.out, "accuracy") == Approx(best_acc).margin(1e-4));
  CHECK(eb.out.find("best.ckpt") != std::string::npos);
  RunResult el = run_mnistctl({"eval", "--model", whole, "--checkpoint", "last", "--data-dir", root, "--json"});
  REQUIRE(el.code == 0);
  CHECK(json_number(el.out, "accuracy") == Approx(csv.at(2, "val_accuracy")).margin(1e-4));
  RunResult e1 = run_mnistctl(
      {"eval", "--model", whole, "--checkpoint", "checkpoints/epoch-001.ckpt", "--data-dir", root, "--json"});
  REQUIRE(e1.code == 0);
  CHECK(json_number(e1.out, "accuracy") == Approx(csv.at(0, "val_accuracy")).margin(1e-4));
  RunResult ef = run_mnistctl({"eval", "--checkpoint", whole + "/checkpoints/epoch-001.ckpt", "--data-dir", root,
                               "--json"});
  REQUIRE(ef.code == 0);
  CHECK(json_number(ef.out, "accuracy") == json_number(e1.out, "accuracy"));
  RunResult pb = run_mnistctl({"predict", "--model", whole, "--checkpoint", "best", "--data-dir", root});
  REQUIRE(pb.code == 0);
  CHECK(std::count(pb.out.begin(), pb.out.end(), '\n') == 10001);
  // A file of the run given with its path is the same file; one of another run is refused
  // (which of the two was meant?). (export reads files the same way: test_export.)
  RunResult ep = run_mnistctl({"eval", "--model", whole, "--checkpoint", whole + "/checkpoints/epoch-001.ckpt",
                               "--data-dir", root, "--json"});
  REQUIRE(ep.code == 0);
  CHECK(json_number(ep.out, "accuracy") == json_number(e1.out, "accuracy"));
  RunResult other = run_mnistctl({"eval", "--model", split, "--checkpoint", whole + "/last.ckpt", "--data-dir", root});
  CHECK(other.code == 2);
  CHECK(one_line(other));
  CHECK(other.err.find("not a checkpoint of --model " + split) != std::string::npos);
  CHECK(run_mnistctl({"predict", "--model", split, "--checkpoint", whole + "/last.ckpt", "--data-dir", root}).code == 2);
  const std::string escape = fs::relative(whole + "/last.ckpt", split).string();  // ../whole/last.ckpt
  RunResult up = run_mnistctl({"eval", "--model", split, "--checkpoint", escape, "--data-dir", root});
  INFO(escape << ": " << up.err);
  CHECK(up.code == 2);
  CHECK(up.err.find("not a checkpoint of --model " + split) != std::string::npos);

  RunResult bad = run_mnistctl({"eval", "--model", whole + "/last.ckpt", "--checkpoint", "best"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("is not a run folder") != std::string::npos);
  bad = run_mnistctl({"eval", "--model", whole, "--checkpoint", "nope.ckpt"});
  CHECK(bad.code == 2);
  CHECK(one_line(bad));
  fs::create_directories(whole + "/old");
  bad = run_mnistctl({"eval", "--model", whole + "/old", "--checkpoint", "best"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("no best.ckpt") != std::string::npos);
  CHECK(bad.err.find("--checkpoint last") == std::string::npos);  // no last.ckpt there either
  // With a last.ckpt (a run stopped in its first epoch, or older than best.ckpt) the way out is named.
  fs::copy_file(whole + "/last.ckpt", whole + "/old/last.ckpt");
  bad = run_mnistctl({"eval", "--model", whole + "/old", "--checkpoint", "best"});
  CHECK(bad.code == 2);
  CHECK(one_line(bad));
  CHECK(bad.err.find("this run has not finished one, or was trained before best.ckpt existed; --checkpoint last "
                     "takes last.ckpt") != std::string::npos);
  bad = run_mnistctl({"eval"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--model") != std::string::npos);
}

TEST_CASE("train into a pipe whose reader goes away stops as for SIGTERM: checkpoint, exit 141, the line on stderr") {
  skip_without_mnist();
  const std::string root = data_root("runs-pipe");
  const std::string out = scratch_dir("runs-pipe-run");
  // `mnistctl train ... | head -n 3`, with mnistctl's own exit status.
  RunResult r = run_in_bash("\"$0\" \"$@\" | head -n 3 >/dev/null; exit ${PIPESTATUS[0]}", quick_mlp(root, out, 3));
  INFO(r.out << r.err);
  REQUIRE(r.code == 141);
  const std::string said = "interrupted: checkpoint written to " + out + "/last.ckpt";
  CHECK(r.err.find(said) != std::string::npos);
  CHECK(r.err.find("writing to standard output failed") == std::string::npos);  // that one line only
  REQUIRE(fs::exists(out + "/last.ckpt"));

  // It continues from there, as after Ctrl-C.
  std::vector<std::string> resume = quick_mlp(root, out, 3);
  resume.push_back("--resume");
  RunResult again = run_mnistctl(resume);
  INFO(again.out << again.err);
  CHECK(again.code == 0);
  CHECK(records(out, "epoch").size() == 3);
}

TEST_CASE("Ctrl-C while stdout's reader stalls (a pager left unscrolled) writes the checkpoint and ends at once") {
  skip_without_mnist();
  const std::string root = data_root("runs-stalled");
  const std::string out = scratch_dir("runs-stalled-run");
  // A line a batch fills the pipe within the first epochs; the test then stops reading
  // stdout, as a pager does, and sends SIGINT. The run must not wait for the reader.
  const std::vector<std::string> args = {"train", "--config", config_file("mlp.yaml"), "--data-dir", root,
                                         "--out", out, "--epochs", "50", "--threads", "1",
                                         "--set", "init.type=xavier", "--set", "train.log_interval=1"};
  bool sent = false, ended_while_stalled = false;
  RunResult r = run_mnistctl(args, [&](const std::string& line, pid_t pid) {
    if (sent || line.find("Batch[") == std::string::npos) return;
    // Not reading: wait until the child has filled the pipe, however slow the machine: its
    // bytes, seen through a second reader that reads nothing, no longer grow.
    const int peek = ::open(("/proc/" + std::to_string(pid) + "/fd/1").c_str(), O_RDONLY | O_NONBLOCK);
    REQUIRE(peek >= 0);
    const auto filling = std::chrono::steady_clock::now();
    for (int queued = 0, before = -1, still = 0;
         still < 10 && std::chrono::steady_clock::now() - filling < std::chrono::seconds(120);) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      REQUIRE(::ioctl(peek, FIONREAD, &queued) == 0);
      still = queued == before && queued > 60000 ? still + 1 : 0;
      before = queued;
    }
    ::close(peek);
    kill(pid, SIGINT);
    sent = true;
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)) {
      siginfo_t info{};
      if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
        ended_while_stalled = true;  // left waitable for run_program
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  INFO(r.err);
  REQUIRE(sent);
  CHECK(ended_while_stalled);
  CHECK(r.code == 130);
  // The line that names the checkpoint goes to stderr when stdout cannot take it.
  CHECK(r.err.find("interrupted: checkpoint written to " + out + "/last.ckpt") != std::string::npos);
  // The checkpoint is at or past the last progress that reached the output.
  const RunPosition at = checkpoint_position(out + "/last.ckpt");
  const RunPosition printed = printed_position(r.out);
  INFO("checkpoint at epoch " << at.first << " batch " << at.second << ", output got to epoch " << printed.first
                              << " batch " << printed.second);
  CHECK(at >= printed);
  CHECK(at.first < 50);
}

TEST_CASE("a hang-up (SIGHUP: the terminal closed) stops train as SIGTERM does, and under nohup it stays ignored") {
  std::string root = data_root("runs-hup-data");
  const std::string out = scratch_dir("runs-hup-run");
  bool sent = false;
  RunResult r = run_mnistctl(quick_mlp(root, out, 50), signal_at("Epoch[2] Batch[10/", SIGHUP, sent));
  INFO(r.out << r.err);
  REQUIRE(sent);
  CHECK(r.code == 129);
  CHECK(r.out.find("interrupted: checkpoint written to " + out + "/last.ckpt") != std::string::npos);
  CHECK(checkpoint_position(out + "/last.ckpt") >= printed_position(r.out));

  // nohup: SIGHUP ignored when train starts stays ignored, and the run goes on to the end.
  const std::string kept = scratch_dir("runs-hup-nohup");
  bool hung_up = false;
  RunResult n = run_in_bash("trap '' HUP; exec \"$0\" \"$@\"", quick_mlp(root, kept, 3),
                            signal_at("Epoch[2] Batch[10/", SIGHUP, hung_up));
  INFO(n.out << n.err);
  REQUIRE(hung_up);
  CHECK(n.code == 0);
  CHECK(n.out.find("done: 3 epochs") != std::string::npos);
}

TEST_CASE("train started with stdout closed fails with one line and its lines never land in a file it opens") {
  std::string root = data_root("runs-closed-data");
  const std::string out = scratch_dir("runs-closed-run");
  // `mnistctl train ... >&-`: the run folder's lock would take number 1 and receive the lines.
  RunResult r = run_in_bash("exec \"$0\" \"$@\" >&-", quick_mlp(root, out, 1));
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  CHECK(r.err.find("mnistctl: writing to standard output failed") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  const std::string lock = read_text(out + "/.lock");
  CHECK(lock.find("Epoch[") == std::string::npos);
  CHECK(lock.find("mnistctl train") == std::string::npos);
  CHECK(fs::exists(out + "/last.ckpt"));  // the work itself is kept
}

TEST_CASE("a Ctrl-C after the last epoch's training ends the run as complete, with its summary") {
  std::string root = data_root("runs-late-data");
  const std::string out = scratch_dir("runs-late-run");
  // The signal comes with the last epoch's line, while the checkpoints are being written:
  // nothing is left to continue, so the run is done, not interrupted.
  // Each checkpoint write is held 300 ms (the test hook), so the signal lands before the run
  // looks for one, however late this process sends it.
  bool sent = false;
  RunResult r = run_mnistctl(quick_mlp(root, out, 2), signal_at("Epoch[2] Train-accuracy", SIGINT, sent),
                             {"MNISTCTL_TEST_WRITE_DELAY_MS=300"});
  INFO(r.out << r.err);
  REQUIRE(sent);
  CHECK(r.code == 0);
  CHECK(r.out.find("interrupted") == std::string::npos);
  CHECK(r.out.find("done: 2 epochs") != std::string::npos);
  CHECK(records(out, "summary").size() == 1);
}

TEST_CASE("a resume drops the metrics records past its checkpoint, so every epoch is logged once") {
  std::string root = data_root("runs-trim-data");
  const std::string whole = scratch_dir("runs-trim-whole"), cut = scratch_dir("runs-trim-cut");
  REQUIRE(run_mnistctl(quick_mlp(root, whole, 2)).code == 0);
  REQUIRE(run_mnistctl(quick_mlp(root, cut, 2)).code == 0);
  // As if killed after epoch 2's records were written and before its checkpoint was.
  fs::copy_file(cut + "/checkpoints/epoch-001.ckpt", cut + "/last.ckpt", fs::copy_options::overwrite_existing);
  fs::remove(cut + "/checkpoints/epoch-002.ckpt");
  std::string kept;  // and before the summary
  for (const std::string& l : lines_of(read_text(cut + "/metrics.jsonl")))
    if (l.find("\"type\":\"summary\"") == std::string::npos) kept += l + "\n";
  std::ofstream(cut + "/metrics.jsonl", std::ios::trunc) << kept;
  std::vector<std::string> resume = quick_mlp(root, cut, 2);
  resume.push_back("--resume");
  RunResult r = run_mnistctl(resume);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  // epoch 2: two batch records (10 and 20 of 30), its epoch record and its csv row
  CHECK(r.out.find("note: 4 records in metrics.jsonl and metrics.csv came after the checkpoint") != std::string::npos);
  // One record per epoch and per logged batch, the values of the uninterrupted run.
  const std::vector<std::string> a = records(whole, "epoch"), b = records(cut, "epoch");
  REQUIRE(b.size() == 2);
  for (size_t i = 0; i < 2; ++i) CHECK(json_number(b[i], "val_accuracy") == json_number(a[i], "val_accuracy"));
  CHECK(records(cut, "batch").size() == records(whole, "batch").size());
  CHECK(records(cut, "summary").size() == 1);
  const Csv csv = read_csv(cut + "/metrics.csv");
  CHECK(csv.headers == 1);
  REQUIRE(csv.rows.size() == 2);
  CHECK(csv.at(0, "epoch") == 1);
  CHECK(csv.at(1, "epoch") == 2);
}

TEST_CASE("stop_at_accuracy stops at the first epoch that reaches it and reports the time to accuracy") {
  std::string root = data_root("runs-tta-data");
  std::string out = scratch_dir("runs-tta");
  auto args = quick_mlp(root, out + "/hit", 5);
  args.insert(args.end(), {"--set", "train.stop_at_accuracy=0.5"});
  RunResult r = run_mnistctl(args);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("stopping after epoch 1: validation accuracy reached 0.5") != std::string::npos);
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex("; time to accuracy 0.5: ([0-9.]+) s \\(epoch 1\\)")));
  std::vector<std::string> ep = records(out + "/hit", "epoch"), sum = records(out + "/hit", "summary");
  REQUIRE(ep.size() == 1);
  REQUIRE(sum.size() == 1);
  const double tta = json_number(sum[0], "time_to_accuracy_s");
  CHECK(tta > 0);
  CHECK(tta == Approx(json_number(ep[0], "elapsed_s")).margin(1e-3));
  CHECK(tta == Approx(std::stod(m[1])).margin(0.051));
  CHECK(json_number(sum[0], "time_to_accuracy_epoch") == 1);
  CHECK(sum[0].find("\"stopped_by\":\"stop_at_accuracy\"") != std::string::npos);
  Checkpoint c = load_checkpoint(out + "/hit/last.ckpt");
  CHECK(c.meta.at("target_epoch") == "1");

  auto miss = quick_mlp(root, out + "/miss", 1, 1000);
  miss.insert(miss.end(), {"--set", "train.stop_at_accuracy=0.999"});
  RunResult n = run_mnistctl(miss);
  REQUIRE(n.code == 0);
  CHECK(n.out.find("did not reach validation accuracy 0.999") != std::string::npos);
  CHECK(records(out + "/miss", "summary")[0].find("time_to_accuracy_s") == std::string::npos);
}

TEST_CASE("early stopping and stop_at_accuracy are checked like every config field") {
  std::string dir = scratch_dir("runs-config");
  auto check = [&](const std::string& train_yaml, const std::string& where, const std::string& what) {
    std::ofstream(dir + "/c.yaml") << "network:\n  layers:\n    - {type: flatten}\n"
                                      "    - {type: fully_connected, num_hidden: 10}\n    - {type: softmax_output}\n"
                                      "train:\n" << train_yaml;
    RunResult r = run_mnistctl({"train", "--config", dir + "/c.yaml", "--dry-run"});
    INFO(train_yaml << " -> " << r.err);
    CHECK(r.code == 2);
    CHECK(one_line(r));
    CHECK(r.err.find(dir + "/c.yaml:" + where) != std::string::npos);
    CHECK(r.err.find(what) != std::string::npos);
  };
  check("  early_stopping: {metric: val_acc}\n", "7:28:", "train.early_stopping.metric: expected one of val_loss, val_accuracy");
  check("  early_stopping:\n    patience: 0\n", "8:15:", "train.early_stopping.patience: expected an integer from 1");
  check("  early_stopping:\n    min_delta: -1\n", "8:16:", "train.early_stopping.min_delta");
  check("  early_stopping:\n    patiense: 2\n", "8:5:", "did you mean 'patience'");
  check("  early_stopping: 3\n", "7:19:", "expected a mapping");
  check("  patience: 2\n", "7:3:", "did you mean 'early_stopping.patience'");
  check("  stop_at_accuracy: 1.5\n", "7:21:", "train.stop_at_accuracy: expected a number > 0 and <= 1");
  std::ofstream(dir + "/ok.yaml") << "network:\n  layers:\n    - {type: flatten}\n"
                                     "    - {type: fully_connected, num_hidden: 10}\n    - {type: softmax_output}\n"
                                     "train:\n  early_stopping: {}\n  stop_at_accuracy: 0.99\n";
  RunResult ok = run_mnistctl({"train", "--config", dir + "/ok.yaml", "--dry-run"});
  CHECK(ok.code == 0);
  CHECK(ok.out.find("early stopping: val_loss without an improvement above 0 for 3 epochs\n") != std::string::npos);
  CHECK(ok.out.find("stop at validation accuracy 0.99\n") != std::string::npos);
}

TEST_CASE("the progress bar shows batches, rate, ETA and running loss on a terminal, and only there") {
  std::string root = data_root("runs-progress-data");
  std::string out = scratch_dir("runs-progress");
  auto args = quick_mlp(root, out + "/tty", 1, 3000);
  RunResult tty = run_on_terminal(args, /*ci=*/false);
  INFO(tty.out);
  REQUIRE(tty.code == 0);
  CHECK(tty.out.find("\r\033[K") != std::string::npos);
  CHECK(std::regex_search(tty.out, std::regex("Epoch\\[1\\] \\[[#.]+\\] +[0-9]+% [0-9]+/30 ([0-9.]+|-)/s ETA "
                                              "[0-9-]+:[0-9-]+ [0-9]+ samples/s loss=[0-9.]+")));
  // The last batch is drawn, with a measured rate and ETA (never a rate of 0 while it runs).
  CHECK(std::regex_search(tty.out, std::regex("100% 30/30 [0-9]+\\.[0-9]/s ETA 0:00 ")));
  CHECK(tty.out.find(" 0.0/s") == std::string::npos);

  // On a narrow terminal every drawn bar fits in one row: one that wraps leaves a stale row
  // at each redraw, as "\r\033[K" clears only the last.
  RunResult narrow = run_on_terminal(quick_mlp(root, out + "/narrow", 1, 3000), /*ci=*/false, 50);
  REQUIRE(narrow.code == 0);
  int bars = 0;
  for (size_t at = 0; (at = narrow.out.find("\r\033[K", at)) != std::string::npos;) {
    at += 4;
    const size_t end = narrow.out.find_first_of("\r\n", at);
    const std::string bar = narrow.out.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (bar.rfind("Epoch[1] [", 0) != 0) continue;  // the clear before a log line
    ++bars;
    INFO("bar: " << bar);
    CHECK(bar.size() <= 49);
  }
  CHECK(bars > 0);

  RunResult ci = run_on_terminal(quick_mlp(root, out + "/ci", 1, 3000), /*ci=*/true);
  REQUIRE(ci.code == 0);
  CHECK(ci.out.find("\033[K") == std::string::npos);
  CHECK(ci.out.find("ETA") == std::string::npos);
  CHECK(ci.out.find("Validation-accuracy=") != std::string::npos);

  RunResult piped = run_mnistctl(quick_mlp(root, out + "/piped", 1, 3000));
  REQUIRE(piped.code == 0);
  CHECK(piped.err.find("\033[K") == std::string::npos);
  CHECK(piped.out.find("\r") == std::string::npos);
}

TEST_CASE("a train_limit or batch_size larger than the training set is capped with a note, not silently") {
  std::string root = data_root("runs-caps-data");
  std::string out = scratch_dir("runs-caps");
  auto args = quick_mlp(root, out + "/batch", 1, 1000);
  args.insert(args.end(), {"--set", "train.batch_size=5000"});
  RunResult b = run_mnistctl(args);
  INFO(b.out << b.err);
  REQUIRE(b.code == 0);
  CHECK(b.out.find("note: train.batch_size 5000 is more than the 1000 training images: an epoch is one batch of "
                   "1000\n") != std::string::npos);
  // One epoch of one batch: one optimizer step.
  RunResult info = run_mnistctl({"info", out + "/batch", "--json"});
  REQUIRE(info.code == 0);
  CHECK(info.out.find("\"step\":1,") != std::string::npos);
  RunResult l = run_mnistctl(quick_mlp(root, out + "/limit", 1, 100000));
  INFO(l.out << l.err);
  REQUIRE(l.code == 0);
  CHECK(l.out.find("note: data.train_limit 100000 is more than the 60000 mnist training images: all 60000 are "
                   "used\n") != std::string::npos);
  CHECK(l.out.find("(60000 training,") != std::string::npos);
  // Within the data: no note.
  RunResult n = run_mnistctl(quick_mlp(root, out + "/none", 1, 1000));
  REQUIRE(n.code == 0);
  CHECK(n.out.find("note:") == std::string::npos);
}
