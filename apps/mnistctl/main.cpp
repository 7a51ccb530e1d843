// mnistctl: argument wiring only. Every subcommand lives in lib/commands; this file turns
// the command line into their option structs and maps errors to exit codes.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "backend/backend.h"
#include "cli/cli.h"
#include "commands/commands.h"
#include "core/error.h"
#include "data/catalog.h"

using namespace mnistctl;

namespace {

const char* kExitCodes =
    "Exit codes: 0 success, 1 eval gate failed (--min-accuracy), 2 bad usage, config or input,\n"
    "3 runtime failure (network, I/O, NaN loss, backend), 130/143/129 interrupted\n"
    "(SIGINT/SIGTERM/SIGHUP), 141 train's standard output closed by its reader (SIGPIPE).";

// with_data: the subcommand reads a dataset (bench does not: it times on random bytes).
void add_run_context(CLI::App* cmd, RunContext& r, bool with_data = true) {
  // The same text in every build (docs/cli.md is generated from it); a build without the
  // CUDA module says so when gpu is asked for.
  cmd->add_option("--ctx", r.ctx,
                  "Where to run: cpu, gpu or gpu:N (needs the CUDA module), or ref (the plain reference "
                  "backend the others are tested against: slow, for checking)")
      ->check(cli::checked(context_problem, {"cpu", "gpu", "ref"}))
      ->capture_default_str();
  cmd->add_option("--threads", r.threads, "CPU threads (0: all cores)")
      ->check(cli::range(0, 1024))
      ->capture_default_str();
  if (!with_data) return;
  cmd->add_option("--data-dir", r.data_dir,
                  "Data folder (default: $MNISTCTL_DATA, else $XDG_CACHE_HOME/mnistctl, else "
                  "~/.cache/mnistctl)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "mnistctl: train, evaluate and serve the classic digit classifiers (MLP, LeNet) on MNIST,\n"
      "on the CPU (oneDNN) or an NVIDIA GPU (cuDNN + cuBLAS), from one YAML file.\n",
      "mnistctl"};
  app.footer(std::string("\nExamples:\n"
                         "  mnistctl fetch\n"
                         "  mnistctl train --config configs/lenet.yaml\n"
                         "  mnistctl eval --model runs/lenet-mnist --min-accuracy 0.98\n"
                         "  mnistctl predict --model runs/lenet-mnist --input digit.png\n\n") +
             kExitCodes);
  app.require_subcommand(1);
  app.set_version_flag("--version", [] { return build_report(); },
                       "Print the build (version, commit, compiler, oneDNN, CUDA module) and exit");

  FetchOptions fetch;
  auto* f = app.add_subcommand("fetch", "Download a dataset, verified by SHA-256");
  f->add_option("--dataset", fetch.dataset, "mnist or fashion-mnist")
      ->check(cli::one_of(dataset_names()))
      ->capture_default_str();
  f->add_option("--data-dir", fetch.data_dir,
                "Data folder (default: $MNISTCTL_DATA, else $XDG_CACHE_HOME/mnistctl, else "
                "~/.cache/mnistctl); one sub-folder per dataset");
  f->add_option("--mirror", fetch.mirrors,
                "Base URL or local folder to try first (repeatable; also $MNISTCTL_MIRROR)");
  f->add_flag("--force", fetch.force, "Download again even when the files are present and verified");
  f->footer("\nEnvironment: MNISTCTL_MIRROR (mirrors tried after --mirror, separated by spaces or commas),\n"
            "MNISTCTL_NO_BUILTIN_MIRRORS=1 (skip the built-in mirrors), MNISTCTL_FETCH_CONNECT_SECONDS (20),\n"
            "MNISTCTL_FETCH_STALL_SECONDS (30), MNISTCTL_FETCH_RETRIES (2).\n"
            "Mirrors: http(s) base URLs, file:// URLs or folders. Exit 3 when no mirror has a file.");

  TrainOptions train;
  auto* t = app.add_subcommand("train", "Train a network described by a YAML file");
  t->add_option("--config", train.config, "YAML file (default: the built-in configs/lenet.yaml)");
  add_run_context(t, train.run);
  t->add_option("--out", train.out, "Run folder (default: runs/<config name>-<dataset>)");
  t->add_option("--epochs", train.epochs, "Override train.epochs")->check(cli::range(1, 100000));
  t->add_option("--seed", train.seed, "Override train.seed")->check(cli::range(0LL, (1LL << 62)));
  t->add_flag("--resume", train.resume,
              "Continue from the run folder's last checkpoint (without --out: the --config's folder, "
              "else the most recently written run under runs/)");
  t->add_flag("--overwrite", train.overwrite,
              "Replace a run already in the folder (its files are removed once training is ready to start)");
  t->add_flag("--dry-run", train.dry_run, "Print the network (shapes, parameters) and exit");
  t->add_flag("--deterministic", train.deterministic,
              "GPU: only deterministic cuDNN algorithms (bit-identical reruns)");
  t->add_option("--precision", train.precision,
                 "fp32 or bf16 (convolutions and fully-connected layers; shorthand for --set train.precision=...)")
      ->check(cli::one_of({"fp32", "bf16"}));
  t->add_option("--set", train.sets, "Override any YAML field, e.g. --set train.learning_rate=0.05 (repeatable)");
  t->add_option("--dataset", train.dataset, "Train on this dataset (sets data.dataset)")
      ->check(cli::one_of(dataset_names()));
  t->footer(std::string("\nExamples:\n"
                        "  mnistctl train --config configs/mlp.yaml --epochs 5\n"
                        "  mnistctl train --config configs/lenet.yaml --set train.learning_rate=0.05 --out runs/lr005\n"
                        "  mnistctl train --out runs/lr005 --resume          # after Ctrl-C: continues exactly\n"
                        "  mnistctl train --config configs/lenet.yaml --dry-run\n"
                        "  mnistctl train --config configs/lenet.yaml --dataset fashion-mnist   # runs/lenet-fashion-mnist\n"
                        "The run folder gets config.yaml, checkpoints/epoch-NNN.ckpt, last.ckpt, best.ckpt,\n"
                        "metrics.jsonl and metrics.csv. A folder that holds a run is never replaced without --overwrite.\n"
                        "--epochs, --seed, --deterministic and --dataset are applied after every --set: a flag wins.\n"
                        "--resume with --config refuses when the file differs from the run's config (it names the keys).\n"
                        "Fields: docs/config.md.\n\n") +
            kExitCodes);

  EvalOptions eval;
  auto* e = app.add_subcommand("eval", "Score a trained model on the test set");
  e->add_option("--model", eval.model, "A run folder or checkpoint file (required unless --checkpoint names a file)")
      ->type_name("RUN|FILE");
  e->add_option("--checkpoint", eval.checkpoint,
                "best, last (of the --model run folder) or a checkpoint FILE (default: last)");
  add_run_context(e, eval.run);
  e->add_flag("--json", eval.json, "Print one JSON object");
  e->add_option("--min-accuracy", eval.min_accuracy, "Exit 1 when accuracy is below this")
      ->check(cli::range(0.0, 1.0));
  e->add_option("--top-k", eval.top_k, "Also report top-k accuracy (a class tied with the true one counts as above it)")->check(cli::range(1, 10))
      ->capture_default_str();
  e->add_option("--dataset", eval.dataset, "Score on this dataset's test set (default: the model's own)")
      ->check(cli::one_of(dataset_names()));
  e->footer(std::string("\nExamples:\n"
                        "  mnistctl eval --model runs/lenet-mnist                 # accuracy, top-k, per class, confusion\n"
                        "  mnistctl eval --model runs/lenet-mnist --checkpoint best   # the epoch with the best validation accuracy\n"
                        "  mnistctl eval --model runs/lenet-mnist --json --min-accuracy 0.98   # a CI gate: exit 1 below\n\n") +
            kExitCodes);

  PredictOptions predict;
  auto* p = app.add_subcommand("predict", "Class probabilities for the test set or your images");
  p->add_option("--model", predict.model, "A run folder or checkpoint file (required unless --checkpoint names a file)")
      ->type_name("RUN|FILE");
  p->add_option("--checkpoint", predict.checkpoint,
                "best, last (of the --model run folder) or a checkpoint FILE (default: last)");
  add_run_context(p, predict.run);
  p->add_option("--input", predict.inputs,
                "IDX image file, PGM/PNG picture, or a folder of them (its files sorted by name); "
                "repeatable. Default: the test set");
  p->add_option("--output", predict.output,
                "Write here instead of stdout (written whole or not at all; .json/.csv set the format). An existing "
                "file is replaced only if it holds an earlier prediction");
  p->add_flag("--force", predict.force, "Replace an existing --output file even if it is not an earlier prediction (never an input or a run's own file)");
  p->add_option("--format", predict.format, "csv or json (default: from --output's extension, else csv)")
      ->check(cli::one_of({"csv", "json"}));
  p->add_flag("--raw", predict.raw,
              "Feed pictures as stored (no inversion, cropping, scaling or centring); they must "
              "already be at the model's input size");
  p->add_option("--save-preprocessed", predict.save_preprocessed,
                "Folder: write each image as the network saw it (28x28 PGM, named <row>-<file>.pgm)");
  p->add_option("--dataset", predict.dataset, "Without --input: this dataset's test set (default: the model's own)")
      ->check(cli::one_of(dataset_names()));
  p->footer(std::string("\nExamples:\n"
                        "  mnistctl predict --model runs/lenet-mnist --output test-probs.csv   # the test set, with its true labels\n"
                        "  mnistctl predict --model runs/lenet-mnist --input digit.png --input scans/ --output probs.json\n"
                        "  mnistctl predict --model runs/lenet-mnist --input digit.png --save-preprocessed seen/\n"
                        "One row per image: source, index, [label,] predicted class, then the class probabilities;\n"
                        "an image that can't be read is an error row, and the run exits 2 at the end.\n"
                        "Pictures are prepared as MNIST was made (docs/predict.md); --raw turns that off.\n\n") +
            kExitCodes);

  BenchOptions bench;
  auto* b = app.add_subcommand("bench", "Time one training step layer by layer (forward, backward, GFLOP/s)");
  b->add_option("--config", bench.config, "YAML file (default: the built-in configs/lenet.yaml)");
  add_run_context(b, bench.run, /*with_data=*/false);
  b->add_option("--batch", bench.batch, "Batch size (default: the config's train.batch_size)")
      ->check(cli::range(1LL, 1LL << 20));
  b->add_option("--iters", bench.iters, "Timed iterations per pass")->check(cli::range(1, 100000))->capture_default_str();
  b->add_option("--warmup", bench.warmup, "Untimed iterations before each pass")
      ->check(cli::range(0, 100000))
      ->capture_default_str();
  b->add_option("--precision", bench.precision, "fp32 or bf16 (default: the config's train.precision)")
      ->check(cli::one_of({"fp32", "bf16"}));
  b->add_option("--set", bench.sets, "Override any YAML field, e.g. --set network.layers.0.num_filter=32 (repeatable)");
  b->add_flag("--json", bench.json, "Print one JSON object");
  b->footer(std::string("\nExamples:\n"
                        "  mnistctl bench                                   # LeNet, batch 100, on the CPU\n"
                        "  mnistctl bench --config configs/mlp.yaml --iters 200 --threads 1\n"
                        "  mnistctl bench --ctx gpu --json\n"
                        "Rows: the batch gather, each layer's forward and backward, the optimizer step; then the\n"
                        "whole step timed apart without per-layer synchronisation. GFLOP/s and its share of the\n"
                        "backend's GEMM limit (measured by the same run) for convolution and fully_connected.\n"
                        "On an x86 CPU with AVX2 or AVX-512 the run also measures the arithmetic peak (a loop\n"
                        "of multiply-adds on registers, which no kernel can beat) and gives the GEMM limit as a\n"
                        "share of it (not in bf16 where oneDNN runs AMX: the loop does not measure its tiles).\n\n") +
            kExitCodes);

  ExportOptions exp;
  auto* x = app.add_subcommand("export", "Write a trained model as ONNX, for other runtimes");
  x->preparse_callback([](size_t) { require_export_support(); });  // a build without ONNX: before --model is checked
  x->add_option("--model", exp.model, "A run folder or checkpoint file")->type_name("RUN|FILE")->required();
  x->add_option("--checkpoint", exp.checkpoint,
                "best, last (of the --model run folder) or a checkpoint FILE (default: last)");
  x->add_option("--format", exp.format, "onnx (default: from the --output extension)")
      ->check(cli::one_of({"onnx"}));
  x->add_option("--output", exp.output, "The file to write, e.g. model.onnx")->type_name("FILE")->required();
  x->add_flag("--logits", exp.logits, "Also output `logits`, the scores before the softmax");
  x->add_flag("--force", exp.force, "Replace the output file if it exists (never the checkpoint read or a run's own file)");
  x->footer(std::string("\nExamples:\n"
                        "  mnistctl export --model runs/lenet-mnist --output lenet.onnx\n"
                        "  mnistctl export --model runs/lenet-mnist --checkpoint best --output lenet-best.onnx --logits\n"
                        "Input `input`: float32 [N,1,28,28], pixels / 255 in [0, 1]. Output `probabilities`: [N,10].\n"
                        "ONNX opset 13 (IR 7); checked with the ONNX checker before it is written. docs/export.md.\n\n") +
            kExitCodes);

  ReportOptions report;
  report.tool_version = "mnistctl 0.1.0";
  auto* rp = app.add_subcommand("report", "Write a self-contained HTML report of a run (curves, confusion, errors)");
  rp->add_option("RUN", report.run_dir, "A run folder (what `train --out` wrote); it may be interrupted or still training")
      ->required();
  rp->add_option("--output", report.output,
                 "HTML file to write (default: RUN/report.html); an existing file is replaced only if it is a report");
  add_run_context(rp, report.run);
  rp->footer(std::string("\nExamples:\n"
                         "  mnistctl report runs/lenet-mnist                 # writes runs/lenet-mnist/report.html\n"
                         "  mnistctl report runs/lenet-mnist --output lenet.html\n"
                         "The page needs no network: charts are inline SVG, digits are data URIs, there is no script.\n\n") +
             kExitCodes);

  InfoOptions info;
  auto* i = app.add_subcommand("info", "What a run folder or checkpoint holds: network, dataset, epoch, accuracy, config");
  i->add_option("RUN|FILE", info.target, "A run folder or checkpoint file")->required();
  i->add_flag("--json", info.json, "Print one JSON object");
  i->footer(std::string("\nExamples:\n"
                        "  mnistctl info runs/lenet-mnist\n"
                        "  mnistctl info runs/lenet-mnist/checkpoints/epoch-003.ckpt --json\n"
                        "Reads the file on the host only (no backend); the accuracy comes from the run's metrics.jsonl.\n\n") +
            kExitCodes);

  // help, completion, did-you-mean and the short usage (lib/cli): after every subcommand.
  cli::add_builtin_commands(app);
  int rc = kExitUsage;
  try {
    rc = cli::parse(app, argc, argv);  // a subcommand's check may throw Error
    if (rc >= 0) return cli::finish_output(rc);
    rc = *f ? run_fetch(fetch) : *t ? run_train(train) : *e ? run_eval(eval) : *p ? run_predict(predict)
       : *b ? run_bench(bench) : *x ? run_export(exp) : *rp ? run_report(report) : *i ? run_info(info)
       : kExitUsage;
  } catch (const Error& err) {
    std::fprintf(stderr, "mnistctl: %s\n", err.what());
    return err.code();
  } catch (const std::filesystem::filesystem_error& err) {
    // A file-system call that escaped the project's own checks: still one line of ours.
    std::fprintf(stderr, "mnistctl: %s: %s\n", err.path1().c_str(), err.code().message().c_str());
    return kExitRuntime;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "mnistctl: out of memory\n");
    return kExitRuntime;
  } catch (const std::exception& err) {
    std::fprintf(stderr, "mnistctl: %s\n", err.what());
    return kExitRuntime;
  }
  return cli::finish_output(rc);
}
