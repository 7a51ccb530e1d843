// The command line's own behaviour, through the real binary: "did you mean" for commands,
// flags and choice values; help, the short usage and --version; docs/cli.md and the bash
// completion script written from the command tree (and fresh); numeric flags (negative values,
// whole/real ranges) and missing required arguments; the precedence of --epochs,
// --seed and --dataset over --set; --dataset for train, eval and predict; --resume refusing an
// edited --config; and `mnistctl info` on a run and on one of its checkpoints.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "config/config.h"
#include "nn/network.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

const std::string kSrc = MNISTCTL_SOURCE_DIR;
const std::string kFashion = "/usr/share/datasets/fashion-mnist";  // Debian's dataset-fashion-mnist

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// One line on stderr, nothing on stdout, exit 2, containing `want`.
void require_one_line_usage_error(const std::vector<std::string>& args, const std::string& want) {
  RunResult r = run_mnistctl(args);
  INFO("args: " << args.front() << " ... stderr: " << r.err << " stdout: " << r.out);
  CHECK(r.code == 2);
  CHECK(lines(r.err) == 1);
  CHECK(r.out.empty());
  CHECK(r.err.find(want) != std::string::npos);
}

// bash: sources the installed completion script and completes `words` (the last is the
// word being typed). Returns COMPREPLY, space-separated.
std::string complete(const std::vector<std::string>& words) {
  std::string script = std::string(MNISTCTL_BINARY_DIR) + "/share/bash-completion/completions/mnistctl";
  std::string arr;
  for (const auto& w : words) arr += " '" + w + "'";
  std::string cmd = "bash -c 'source \"$0\"; COMP_WORDS=(\"${@}\"); COMP_CWORD=$(( $# - 1 )); _mnistctl; "
                    "echo \"${COMPREPLY[*]}\"' '" + script + "'" + arr;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  REQUIRE(pclose(p) == 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string json_field(const std::string& json, const std::string& key) {
  std::smatch m;
  REQUIRE(std::regex_search(json, m, std::regex("\"" + key + "\":(\"[^\"]*\"|[-0-9.eE+]+|null)")));
  return m[1];
}

}  // namespace

TEST_CASE("unknown commands, flags and choice values get one line with a suggestion and exit 2") {
  require_one_line_usage_error({"trian"}, "unknown command 'trian' for mnistctl (did you mean 'train'?)");
  require_one_line_usage_error({"evaluate", "--model", "x"}, "(did you mean 'eval'?)");
  require_one_line_usage_error({"train", "--epoch", "1"}, "train: unknown option --epoch (did you mean '--epochs'?)");
  require_one_line_usage_error({"eval", "--modle", "runs/x"}, "(did you mean '--model'?)");
  require_one_line_usage_error({"train", "--ctx", "cuda"}, "--ctx: unknown context 'cuda' (expected cpu, gpu, gpu:N or ref; did you mean 'gpu'?)");
  require_one_line_usage_error({"eval", "--model", "x", "--ctx", "cuda:1"}, "did you mean 'gpu:1'?");
  require_one_line_usage_error({"train", "--ctx", "cpi"}, "did you mean 'cpu'?");
  require_one_line_usage_error({"train", "--dataset", "fashion"}, "got 'fashion' (did you mean 'fashion-mnist'?)");
  require_one_line_usage_error({"fetch", "--dataset", "fashion"}, "(did you mean 'fashion-mnist'?)");
  require_one_line_usage_error({"predict", "--model", "x", "--format", "jsn"}, "(did you mean 'json'?)");
  require_one_line_usage_error({"help", "trian"}, "help: unknown command 'trian' (did you mean 'train'?)");
  // --set data.dataset goes through the config loader, which uses the same closest-match rule.
  require_one_line_usage_error({"train", "--dry-run", "--set", "data.dataset=fashion"}, "did you mean 'fashion-mnist'?");
  // Nothing close: no made-up suggestion.
  RunResult r = run_mnistctl({"train", "--zzzzzz"});
  CHECK(r.code == 2);
  CHECK(r.err.find("unknown option --zzzzzz") != std::string::npos);
  CHECK(r.err.find("did you mean") == std::string::npos);
}

TEST_CASE("numeric flags: negative numbers as values, whole and real ranges, missing values") {
  // A negative number after a flag is its value (CLI11 alone reads it as an unknown flag "-1"),
  // and gets the same message as the --flag=value form.
  for (const char* form : {"sep", "eq"}) {
    auto args = [&](const std::string& cmd, const std::string& flag, const std::string& v) {
      return std::string(form) == "sep" ? std::vector<std::string>{cmd, flag, v}
                                        : std::vector<std::string>{cmd, flag + "=" + v};
    };
    require_one_line_usage_error(args("train", "--threads", "-1"),
                                 "mnistctl: --threads: expected a whole number from 0 to 1024, got '-1' (see mnistctl train --help)");
    require_one_line_usage_error({"train", "--epochs", "3", "--epochs", "4"},
                                 "mnistctl: --epochs: given 2 times, expected once (see mnistctl train --help)");
    require_one_line_usage_error(args("train", "--seed", "-5"),
                                 "--seed: expected a whole number from 0 to 4611686018427387904, got '-5'");
    require_one_line_usage_error(args("train", "--epochs", "-3"), "--epochs: expected a whole number from 1 to 100000, got '-3'");
    require_one_line_usage_error(args("eval", "--min-accuracy", "-0.5"), "--min-accuracy: expected a number from 0 to 1, got '-0.5'");
  }
  // Other flags after the joined value still parse: the message is about --threads.
  require_one_line_usage_error({"train", "--dry-run", "--threads", "-2", "--epochs", "1"}, "got '-2'");
  // A word that is not a number is still not taken for a negative value.
  require_one_line_usage_error({"train", "--threads", "-x"}, "unknown option -x");
  // Whole numbers vs real numbers, bounds written plainly.
  require_one_line_usage_error({"train", "--epochs", "1.5"}, "--epochs: expected a whole number from 1 to 100000, got '1.5'");
  require_one_line_usage_error({"eval", "--min-accuracy", "abc"}, "--min-accuracy: expected a number from 0 to 1, got 'abc'");
  require_one_line_usage_error({"eval", "--min-accuracy", "97"}, "--min-accuracy: expected a number from 0 to 1, got '97'");
  require_one_line_usage_error({"eval", "--min-accuracy", "nan"}, "got 'nan'");
  require_one_line_usage_error({"eval", "--top-k", "11"}, "--top-k: expected a whole number from 1 to 10, got '11'");
  require_one_line_usage_error({"bench", "--batch", "0"}, "--batch: expected a whole number from 1 to 1048576, got '0'");
  require_one_line_usage_error({"bench", "--iters", "99999999999999999999"}, "from 1 to 100000, got '99999999999999999999'");
  require_one_line_usage_error({"bench", "--warmup", "abc"}, "--warmup: expected a whole number from 0 to 100000");
  require_one_line_usage_error({"predict", "--threads", "2x"}, "got '2x'");
  // A flag given last without its value.
  require_one_line_usage_error({"train", "--epochs"}, "mnistctl: --epochs needs a value: INT [1, 100000] (see mnistctl train --help)");
  // In range: accepted (the dry run prints the network).
  RunResult ok = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--dry-run", "--epochs", "2", "--threads", "1"});
  INFO(ok.err);
  CHECK(ok.code == 0);
  CHECK(ok.out.find(", 2 epochs,") != std::string::npos);
  CHECK(run_mnistctl({"eval", "--min-accuracy", "1.5e-1", "--model", scratch_dir("cli-range") + "/none"}).err.find(
            "expected a number") == std::string::npos);  // 0.15 passes the range; the missing model is the error
}

TEST_CASE("an empty option value (an unset shell variable) is refused, not taken as the default") {
  // Each of these would otherwise write to stdout, to the default run folder or report path,
  // or read the default checkpoint.
  require_one_line_usage_error({"predict", "--model", "runs/x", "--output", ""}, "mnistctl: --output: empty value");
  require_one_line_usage_error({"report", "runs/x", "--output", ""}, "mnistctl: --output: empty value");
  require_one_line_usage_error({"report", ""}, "mnistctl: RUN: empty value");
  require_one_line_usage_error({"train", "--out", "", "--dry-run"}, "mnistctl: --out: empty value");
  require_one_line_usage_error({"train", "--out=", "--dry-run"}, "mnistctl: --out: empty value");
  require_one_line_usage_error({"eval", "--model", "runs/x", "--checkpoint", ""}, "mnistctl: --checkpoint: empty value");
  // A flag that would do nothing in this combination is refused too.
  require_one_line_usage_error({"predict", "--model", "runs/x", "--input", "digit.png", "--dataset", "fashion-mnist"},
                               "mnistctl: --dataset fashion-mnist: picks the test set that predict scores without --input");
}

TEST_CASE("a missing required argument is named after what the user passes, with the usage") {
  require_one_line_usage_error(
      {"info"}, "mnistctl: info needs RUN|FILE, a run folder or checkpoint file: mnistctl info RUN|FILE [OPTIONS]");
  require_one_line_usage_error({"info", "--json"}, "info needs RUN|FILE");
  require_one_line_usage_error({"report"}, "mnistctl: report needs RUN, a run folder (what `train --out` wrote): mnistctl report RUN [OPTIONS]");
  require_one_line_usage_error({"completion"}, "mnistctl: completion needs SHELL, the shell to write it for (only bash): mnistctl completion SHELL");
  require_one_line_usage_error({"export"}, "mnistctl: export needs --model RUN|FILE, a run folder or checkpoint file: "
                                           "mnistctl export --model RUN|FILE --output FILE [OPTIONS]");
  require_one_line_usage_error({"export", "--model", "x"}, "export needs --output FILE, the file to write");
  // eval and predict take --model or a --checkpoint FILE: their own check names both.
  for (const char* cmd : {"eval", "predict"})
    require_one_line_usage_error({cmd}, "which model? give --model RUN");
}

TEST_CASE("help, help COMMAND, the short usage and --version") {
  RunResult bare = run_mnistctl({});
  CHECK(bare.code == 2);
  for (const char* cmd : {"fetch", "train", "eval", "predict", "info", "help"})
    CHECK(bare.err.find(std::string("\n  ") + cmd + " ") != std::string::npos);
  CHECK(bare.err.find("\n  completion ") != std::string::npos);  // listed: its errors point to its --help

  // help COMMAND works for the built-in commands too; their --help is their own usage, not
  // mnistctl's examples.
  for (const char* cmd : {"completion", "help"}) {
    RunResult hc = run_mnistctl({"help", cmd});
    INFO(cmd << ": " << hc.err);
    CHECK(hc.code == 0);
    CHECK(hc.out.find(std::string("Usage: mnistctl ") + cmd) != std::string::npos);
    CHECK(hc.out.find("mnistctl fetch") == std::string::npos);
    RunResult ch = run_mnistctl({cmd, "--help"});
    CHECK(ch.code == 0);
    CHECK(ch.out == hc.out);
  }
  CHECK(run_mnistctl({"help", "completion"}).out.find("source <(mnistctl completion bash)") != std::string::npos);
  CHECK(run_mnistctl({"help", "help"}).out.find("mnistctl help train") != std::string::npos);

  RunResult help = run_mnistctl({"help"});
  CHECK(help.code == 0);
  CHECK(help.out.find("Usage: mnistctl") != std::string::npos);
  CHECK(help.out.find("train") != std::string::npos);

  RunResult ht = run_mnistctl({"help", "train"});
  CHECK(ht.code == 0);
  CHECK(ht.out.find("Usage: mnistctl train") != std::string::npos);
  CHECK(ht.out.find("--epochs") != std::string::npos);
  CHECK(ht.out.find("--dataset") != std::string::npos);
  RunResult th = run_mnistctl({"train", "--help"});
  CHECK(th.code == 0);
  CHECK(th.out == ht.out);  // the same text both ways

  RunResult v = run_mnistctl({"--version"});
  REQUIRE(v.code == 0);
  INFO(v.out);
  CHECK(std::regex_search(v.out, std::regex("^mnistctl [0-9]+\\.[0-9]+\\.[0-9]+\n")));
  CHECK(std::regex_search(v.out, std::regex("\ncommit: ([0-9a-f]{7,}(-dirty)?|unknown)\n")));
  // In a git checkout, the commit is the one that was built (read at build time, not when
  // CMake configured): the source tree's HEAD.
  {
    FILE* g = popen(("git -C '" + std::string(MNISTCTL_SOURCE_DIR) + "' rev-parse HEAD 2>/dev/null").c_str(), "r");
    REQUIRE(g != nullptr);
    char head[64] = {};
    const size_t n = fread(head, 1, sizeof head - 1, g);
    if (pclose(g) == 0 && n >= 12)
      CHECK(v.out.find("\ncommit: " + std::string(head, 12)) != std::string::npos);
  }
  CHECK(std::regex_search(v.out, std::regex("\ncompiler: [A-Za-z]+ [0-9.]+")));
  CHECK(std::regex_search(v.out, std::regex("\noneDNN: [0-9]+\\.[0-9]+\\.[0-9]+")));
#if MNISTCTL_TEST_CUDA_BUILT
  CHECK(std::regex_search(v.out, std::regex("\nCUDA module: built, (present|but libmnistctl_cuda.so is not beside)")));
#else
  CHECK(v.out.find("\nCUDA module: not built") != std::string::npos);
#endif
}

TEST_CASE("docs/cli.md matches the command tree") {
  RunResult md = run_mnistctl({"help", "--markdown"});
  REQUIRE(md.code == 0);
  // Every visible subcommand and each of train's flags is documented.
  for (const char* s : {"## `mnistctl fetch`", "## `mnistctl train`", "## `mnistctl info`", "`--epochs`", "`--dataset`"})
    CHECK(md.out.find(s) != std::string::npos);
  CHECK(md.out.find("## `mnistctl completion`") != std::string::npos);
  // "(required)" comes from the command tree, for every required option and positional alike.
  for (const char* s : {"| `--model` | RUN\\|FILE |  | A run folder or checkpoint file (required) |",
                        "| `--output` | FILE |  | The file to write, e.g. model.onnx (required) |",
                        "| `RUN\\|FILE` | TEXT |  | A run folder or checkpoint file (required) |",
                        "mnistctl export --model RUN|FILE --output FILE [OPTIONS]"})
    CHECK(md.out.find(s) != std::string::npos);
  CHECK(md.out.find("(required) (required)") == std::string::npos);
  const std::string doc = read_text(kSrc + "/docs/cli.md");
  if (doc != md.out)
    FAIL("docs/cli.md is stale (it differs from `mnistctl help --markdown`); regenerate it from the repository root "
         "after building with: build/bin/mnistctl help --markdown > docs/cli.md");
  CHECK(doc.find("build/bin/mnistctl help --markdown > docs/cli.md") != std::string::npos);
}

TEST_CASE("the build writes a bash completion that completes subcommands, flags and choices") {
  const std::string installed = std::string(MNISTCTL_BINARY_DIR) + "/share/bash-completion/completions/mnistctl";
  REQUIRE(fs::exists(installed));
  RunResult gen = run_mnistctl({"completion", "bash"});
  REQUIRE(gen.code == 0);
  CHECK(read_text(installed) == gen.out);  // the build's copy is current

  CHECK(complete({"mnistctl", "tr"}) == "train");
  CHECK(complete({"mnistctl", "ev"}) == "eval");
  CHECK(complete({"mnistctl", "train", "--ep"}) == "--epochs");
  CHECK(complete({"mnistctl", "train", "--dataset", "fa"}) == "fashion-mnist");
  CHECK(complete({"mnistctl", "eval", "--ctx", ""}) == "cpu gpu ref");
  CHECK(complete({"mnistctl", "predict", "--format", ""}) == "csv json");
  CHECK(complete({"mnistctl", "help", "pr"}) == "predict");
  CHECK(complete({"mnistctl", "info", "--j"}) == "--json");
  CHECK(complete({"mnistctl", "--ver"}) == "--version");
}

TEST_CASE("the flags --epochs, --seed and --dataset win over --set of the same key, in either order") {
  auto dry = [](std::vector<std::string> extra) {
    std::vector<std::string> a = {"train", "--config", config_file("mlp.yaml"), "--dry-run"};
    a.insert(a.end(), extra.begin(), extra.end());
    RunResult r = run_mnistctl(a);
    INFO(r.err);
    REQUIRE(r.code == 0);
    return r.out;
  };
  CHECK(dry({"--epochs", "3", "--set", "train.epochs=5"}).find(", 3 epochs,") != std::string::npos);
  CHECK(dry({"--set", "train.epochs=5", "--epochs", "3"}).find(", 3 epochs,") != std::string::npos);
  CHECK(dry({"--set", "train.epochs=5"}).find(", 5 epochs,") != std::string::npos);
  CHECK(dry({"--seed", "7", "--set", "train.seed=9"}).find("seed 7") != std::string::npos);
  CHECK(dry({"--set", "train.seed=9", "--seed", "7"}).find("seed 7") != std::string::npos);
  CHECK(dry({"--dataset", "fashion-mnist"}).find("dataset fashion-mnist,") != std::string::npos);
  CHECK(dry({"--set", "data.dataset=mnist", "--dataset", "fashion-mnist"}).find("dataset fashion-mnist,") !=
        std::string::npos);
  CHECK(dry({}).find("dataset mnist,") != std::string::npos);
}

TEST_CASE("a trained run: info, eval/predict --dataset, and --resume refusing an edited config") {
  const std::string root = data_root("clihelp-data");
  const std::string dir = scratch_dir("clihelp-run");
  const std::string cfg = dir + "/my-mlp.yaml";
  fs::copy_file(config_file("mlp.yaml"), cfg);
  const std::string run = dir + "/run";
  const std::vector<std::string> sets = {"--set", "data.train_limit=1000", "--set", "data.test_limit=500",
                                         "--set", "init.type=xavier", "--set", "train.log_interval=0"};
  auto train = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"train", "--config", cfg, "--data-dir", root, "--out", run, "--threads", "2"};
    a.insert(a.end(), sets.begin(), sets.end());
    a.insert(a.end(), extra.begin(), extra.end());
    return run_mnistctl(a);
  };
  RunResult first = train({"--epochs", "1"});
  INFO(first.out << first.err);
  REQUIRE(first.code == 0);

  // --- info, text and JSON, on the run folder and on an epoch checkpoint ---
  const int64_t params = Network(load_config_file(config_file("mlp.yaml")).network).param_count();
  std::smatch m;
  const std::string metrics = read_text(run + "/metrics.jsonl");
  REQUIRE(std::regex_search(metrics, m, std::regex("\"type\":\"epoch\",\"epoch\":1,.*\"val_accuracy\":([0-9.]+)")));
  const double val = std::stod(m[1]);
  RunResult info = run_mnistctl({"info", run});
  INFO(info.out << info.err);
  REQUIRE(info.code == 0);
  CHECK(info.out.find("network: mlp, 7 layers, " + std::to_string(params) + " parameters") != std::string::npos);
  CHECK(info.out.find("fc3 ") != std::string::npos);
  CHECK(info.out.find("dataset: mnist\n") != std::string::npos);
  CHECK(info.out.find("progress: 1 of 1 epochs done, step 10 (batch size 100)") != std::string::npos);
  char acc[64];
  std::snprintf(acc, sizeof acc, "accuracy: validation %.4f after epoch 1", val);
  CHECK(info.out.find(acc) != std::string::npos);
  CHECK(info.out.find("  train_limit: 1000") != std::string::npos);  // the config
  // The backend the run was trained on (info itself runs none).
  CHECK(std::regex_search(info.out, std::regex("\ntrained on: cpu \\(oneDNN [0-9.]+, 2 threads\\)\n")));
  std::snprintf(acc, sizeof acc, "best: validation %.4f at epoch 1 (%s/best.ckpt)", val, run.c_str());
  CHECK(info.out.find(acc) != std::string::npos);  // the run's best epoch (one epoch: that one)
  RunResult ij = run_mnistctl({"info", run + "/checkpoints/epoch-001.ckpt", "--json"});
  INFO(ij.out << ij.err);
  REQUIRE(ij.code == 0);
  CHECK(lines(ij.out) == 1);
  CHECK(json_field(ij.out, "parameters") == std::to_string(params));
  CHECK(json_field(ij.out, "run") == "\"" + run + "\"");
  CHECK(json_field(ij.out, "epoch") == "1");
  CHECK(json_field(ij.out, "step") == "10");
  CHECK(json_field(ij.out, "dataset") == "\"mnist\"");
  CHECK(std::fabs(std::stod(json_field(ij.out, "validation")) - val) < 1e-6);
  RunResult missing = run_mnistctl({"info", dir + "/nothing-here"});
  CHECK(missing.code == 2);
  CHECK(lines(missing.err) == 1);

  // --- eval and predict --dataset ---
  RunResult own = run_mnistctl({"eval", "--model", run, "--data-dir", root, "--dataset", "mnist", "--threads", "2"});
  INFO(own.out << own.err);
  CHECK(own.code == 0);
  CHECK(own.out.find("dataset: mnist (test set)") != std::string::npos);
  // A model whose class count fits no dataset: one line, exit 2, before any data is read.
  Checkpoint c = load_checkpoint(run + "/last.ckpt");
  const std::string fc3 = "- {type: fully_connected, name: fc3, num_hidden: 10}";
  REQUIRE(c.config_yaml.find(fc3) != std::string::npos);
  c.config_yaml.replace(c.config_yaml.find(fc3), fc3.size(), "- {type: fully_connected, name: fc3, num_hidden: 5}");
  for (auto& t : c.tensors) {
    if (t.name == "param/fc3.weight" || t.name == "param/fc3.bias") {
      const int64_t row = t.shape.numel() / t.shape.dims[0];
      t.shape.dims[0] = 5;
      t.data.resize(static_cast<size_t>(5 * row));
    }
  }
  const std::string five = dir + "/five.ckpt";
  save_checkpoint(five, c);
  for (std::string cmd : {"eval", "predict"}) {
    RunResult bad = run_mnistctl({cmd, "--model", five, "--data-dir", dir + "/no-data", "--dataset", "fashion-mnist"});
    INFO(cmd << ": " << bad.err);
    CHECK(bad.code == 2);
    CHECK(lines(bad.err) == 1);
    CHECK(bad.err.find("--dataset fashion-mnist: fashion-mnist has 10 classes of 28x28 images (784 values each), but the model") !=
          std::string::npos);
    CHECK(bad.err.find("has 5 outputs") != std::string::npos);
  }

  // --- --resume with --config ---
  // Unchanged file, same overrides: accepted, the run continues to epoch 2.
  RunResult same = train({"--epochs", "2", "--resume"});
  INFO(same.out << same.err);
  REQUIRE(same.code == 0);
  // info on epoch 1's checkpoint names best.ckpt only where best.ckpt holds the best epoch
  // that checkpoint knew (epoch 1): after a better epoch 2 it says what best.ckpt holds now.
  {
    const int64_t best_now = load_checkpoint(run + "/best.ckpt").meta_int("epoch", "best.ckpt");
    RunResult old_text = run_mnistctl({"info", run + "/checkpoints/epoch-001.ckpt"});
    RunResult old_json = run_mnistctl({"info", run + "/checkpoints/epoch-001.ckpt", "--json"});
    INFO(old_text.out << old_json.out << "best.ckpt holds epoch " << best_now);
    REQUIRE(old_text.code == 0);
    REQUIRE(old_json.code == 0);
    CHECK(old_text.out.find("at epoch 1 (") != std::string::npos);
    if (best_now == 1) {
      CHECK(old_text.out.find("at epoch 1 (" + run + "/best.ckpt)") != std::string::npos);
      CHECK(old_json.out.find("\"checkpoint\":\"" + run + "/best.ckpt\"}") != std::string::npos);
    } else {
      CHECK(old_text.out.find("at epoch 1 (as of this checkpoint; " + run + "/best.ckpt now holds epoch " +
                              std::to_string(best_now) + ")") != std::string::npos);
      CHECK(old_json.out.find("\"best\":{\"epoch\":1,") != std::string::npos);
      CHECK(old_json.out.find("\"checkpoint\":null}") != std::string::npos);
    }
  }
  // A result that cannot be written to standard output (a full disk) is a failure, exit 3,
  // with one line, not an exit 0 over an empty file.
  if (fs::exists("/dev/full")) {
    const std::string err = dir + "/full.err";
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"info", run, "--json"}, {"eval", "--model", run, "--data-dir", root, "--json"},
          {"eval", "--model", run, "--data-dir", root, "--min-accuracy", "0.99"}, {"help"}, {"--version"},
          {"completion", "bash"}}) {
      Limited r = run_to_files(args, "/dev/full", err);
      INFO(args[0] << ": " << r.err << read_text(err));
      CHECK(r.code == 3);
      CHECK(read_text(err).find("mnistctl: writing to standard output failed") != std::string::npos);
    }
  }
  // An edited file: refused, naming the keys; the run is untouched.
  std::string text = read_text(cfg);
  REQUIRE(text.find("learning_rate: 0.1") != std::string::npos);
  text.replace(text.find("learning_rate: 0.1"), 18, "learning_rate: 0.05");
  text += "\n";
  { std::ofstream(cfg, std::ios::binary) << text; }
  const std::string before = read_text(run + "/last.ckpt");
  RunResult edited = train({"--epochs", "3", "--resume"});
  INFO(edited.out << edited.err);
  CHECK(edited.code == 2);
  CHECK(lines(edited.err) == 1);
  CHECK(edited.err.find("differs from the config") != std::string::npos);
  CHECK(edited.err.find("in: train.learning_rate (") != std::string::npos);
  CHECK(read_text(run + "/last.ckpt") == before);
  // Two keys edited: both named.
  std::string two = text;
  two.replace(two.find("num_hidden: 128"), 15, "num_hidden: 100");
  { std::ofstream(cfg, std::ios::binary) << two; }
  RunResult edited2 = train({"--epochs", "3", "--resume"});
  CHECK(edited2.code == 2);
  CHECK(edited2.err.find("network.layers.1.num_hidden, train.learning_rate") != std::string::npos);
  { std::ofstream(cfg, std::ios::binary) << text; }
  // --set is the way to change a resumed run: the same change through --set is accepted.
  RunResult via_set = train({"--epochs", "3", "--resume", "--set", "train.learning_rate=0.05"});
  INFO(via_set.out << via_set.err);
  CHECK(via_set.code == 0);
  CHECK(load_config_text(load_checkpoint(run + "/last.ckpt").config_yaml, "last").train.optimizer.learning_rate == 0.05);
}

TEST_CASE("Fashion-MNIST end to end: fetch, train --dataset, eval with class counts, eval --dataset") {
  if (!fs::exists(kFashion + "/t10k-images-idx3-ubyte.gz"))
    FAIL(kFashion << " not installed (Debian package dataset-fashion-mnist, installed by scripts/setup.sh)");
  const std::string root = data_root("clihelp-fashion");
  const std::string dir = scratch_dir("clihelp-fashion-run");
  RunResult fetch = run_mnistctl({"fetch", "--dataset", "fashion-mnist", "--data-dir", root, "--mirror", kFashion},
                                 {}, {"MNISTCTL_NO_BUILTIN_MIRRORS=1"});
  INFO(fetch.out << fetch.err);
  REQUIRE(fetch.code == 0);
  RunResult train = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--dataset", "fashion-mnist",
                                  "--data-dir", root, "--out", dir + "/fashion", "--epochs", "1", "--threads", "2",
                                  "--set", "data.train_limit=2000", "--set", "data.test_limit=1000", "--set",
                                  "init.type=xavier", "--set", "train.log_interval=0"});
  INFO(train.out << train.err);
  REQUIRE(train.code == 0);
  RunResult info = run_mnistctl({"info", dir + "/fashion"});
  CHECK(info.out.find("dataset: fashion-mnist\n") != std::string::npos);
  // eval uses the model's own dataset by default; well above chance (0.1) after 2,000 images.
  RunResult ev = run_mnistctl({"eval", "--model", dir + "/fashion", "--data-dir", root, "--json", "--threads", "2"});
  INFO(ev.out << ev.err);
  REQUIRE(ev.code == 0);
  CHECK(ev.out.find("fashion-mnist (test)") != std::string::npos);
  std::smatch m;
  REQUIRE(std::regex_search(ev.out, m, std::regex("\"accuracy\":([0-9.]+)")));
  const double fashion_acc = std::stod(m[1]);
  CHECK(fashion_acc > 0.5);
  // --dataset mnist scores the same model on MNIST's test set instead (another figure).
  RunResult cross = run_mnistctl({"eval", "--model", dir + "/fashion", "--data-dir", root, "--dataset", "mnist",
                                  "--json", "--threads", "2"});
  INFO(cross.out << cross.err);
  REQUIRE(cross.code == 0);
  CHECK(cross.out.find("\"mnist (test)\"") != std::string::npos);
  REQUIRE(std::regex_search(cross.out, m, std::regex("\"accuracy\":([0-9.]+)")));
  CHECK(std::stod(m[1]) != fashion_acc);
}
