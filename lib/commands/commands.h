// The subcommands as library functions: apps/mnistctl parses the command line into these
// option structs and calls run_*(). Each returns the process exit code (core/error.h) or
// throws mnistctl::Error.
#pragma once

#include <string>
#include <vector>

namespace mnistctl {

struct FetchOptions {
  std::string dataset = "mnist";      // mnist | fashion-mnist
  std::string data_dir;               // empty: default_data_root()
  std::vector<std::string> mirrors;   // tried before MNISTCTL_MIRROR and the built-in ones
  bool force = false;                 // download again even if the files verify
};
int run_fetch(const FetchOptions& o);

// Shared by train, eval, predict.
struct RunContext {
  std::string ctx = "cpu";            // cpu | gpu | gpu:N
  int threads = 0;                    // 0: all cores
  std::string data_dir;               // empty: default_data_root()
};

struct TrainOptions {
  RunContext run;
  std::string config;                 // empty: the embedded configs/lenet.yaml
  std::string out;                    // empty: runs/<config name>-<dataset>
  int epochs = -1;                    // -1: from the config
  long long seed = -1;                // -1: from the config
  bool resume = false;
  bool overwrite = false;             // a fresh run may replace the run in `out`
  bool dry_run = false;
  bool deterministic = false;         // GPU: deterministic cuDNN algorithms
  std::string precision;              // "": from the config (train.precision)
  std::vector<std::string> sets;      // key=value overrides
  std::string dataset;                // sets data.dataset (empty: from the config)
};
int run_train(const TrainOptions& o);

struct EvalOptions {
  RunContext run;
  std::string model;                  // run folder or checkpoint file
  std::string checkpoint;             // best | last | FILE (empty: last.ckpt of a run folder)
  bool json = false;
  double min_accuracy = -1.0;         // < 0: no gate
  int top_k = 5;
  std::string dataset;                // test set to score on (empty: the model's own)
};
int run_eval(const EvalOptions& o);

struct PredictOptions {
  RunContext run;
  std::string model;
  std::string checkpoint;             // best | last | FILE (empty: last.ckpt of a run folder)
  std::vector<std::string> inputs;    // IDX, PGM or PNG files or folders of them; empty: the test set
  std::string output;                 // empty: stdout
  bool force = false;                 // replace an --output that is not an earlier prediction
  std::string format;                 // csv | json; empty: from --output's extension, else csv
  bool raw = false;                   // pictures used as stored, no preprocessing (docs/predict.md)
  std::string save_preprocessed;      // folder: one PGM per image, what the network saw
  std::string dataset;                // test set when no --input (empty: the model's own)
};
int run_predict(const PredictOptions& o);

struct BenchOptions {
  RunContext run;
  std::string config;                 // empty: the embedded configs/lenet.yaml
  std::vector<std::string> sets;      // key=value overrides
  long long batch = 0;                // 0: the config's train.batch_size
  std::string precision;              // "": from the config (train.precision)
  int iters = 50;
  int warmup = 5;
  bool json = false;
};
int run_bench(const BenchOptions& o);

struct ExportOptions {
  std::string model;                  // run folder or checkpoint file
  std::string checkpoint;             // run folder: best | last (empty: last)
  std::string format;                 // onnx; empty: from the output's extension
  std::string output;                 // the file to write
  bool logits = false;                // also output `logits` (the scores before the softmax)
  bool force = false;                 // replace an existing output file
};
// Exit 2 (one line) in a build without ONNX export (MNISTCTL_ENABLE_ONNX=OFF).
int run_export(const ExportOptions& o);
// That refusal (UsageError) in a build without ONNX export, nothing otherwise: the command
// line calls it as soon as it meets `export`, before it checks export's required options.
void require_export_support();

// mnistctl report: one self-contained HTML page about a run folder (lib/report).
struct ReportOptions {
  RunContext run;                     // where the checkpoint is evaluated on the test set
  std::string run_dir;                // the run folder
  std::string output;                 // empty: <run_dir>/report.html; an existing file must be a report
  std::string tool_version;           // shown in the page, e.g. "mnistctl 0.1.0"
};
int run_report(const ReportOptions& o);

// `mnistctl info`: what a run folder or checkpoint holds, read on the host (no backend).
struct InfoOptions {
  std::string target;                 // run folder or checkpoint file
  bool json = false;
};
int run_info(const InfoOptions& o);

}  // namespace mnistctl
