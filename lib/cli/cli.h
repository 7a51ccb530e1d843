// The command line's own behaviour, independent of what each subcommand does: parsing with
// one-line "did you mean" errors, `mnistctl help [CMD]`, the short usage, and the two
// documents written from the command tree (docs/cli.md and the bash completion script).
// Everything here walks the CLI11 App that apps/mnistctl builds, so a subcommand or flag
// added there is suggested, documented and completed without further work.
#pragma once

#include <functional>
#include <type_traits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace mnistctl::cli {

// Adds `help [COMMAND] [--markdown]` and `completion bash`, each with its own usage. Call after
// the other subcommands are added (help lists them; the built-in entries come last).
void add_builtin_commands(CLI::App& app);

// Parses the command line. Returns -1 when one of the caller's subcommands is to run;
// otherwise the process's exit code, having printed what was asked (help, version, usage,
// completion, markdown) or one error line ("mnistctl: ...") on stderr (exit 2). A negative
// number after a flag that takes a value is that value (`--threads -1` as `--threads=-1`).
// First, a closed standard stream gets /dev/null read-only (so no file takes its number; a
// write to it still fails).
int parse(CLI::App& app, int argc, char** argv);

// Flushes standard output and turns a write to it that failed (a full disk, a closed file)
// into exit 3 with one line on stderr: a result that did not reach its file is not a success.
// `rc` is the command's exit code; an error code the command already returned is kept.
int finish_output(int rc);

// A value from a fixed list; a wrong one fails with the list and a "did you mean".
// The description "{a,b,c}" is what help shows and what the completion script offers.
CLI::Validator one_of(std::vector<std::string> allowed);

// A value checked by `problem` (empty: fine, else the one-line reason, a hint included).
// `choices` (optional) are offered by completion.
CLI::Validator checked(std::function<std::string(const std::string&)> problem,
                       std::vector<std::string> choices = {});

// A number from lo to hi: a whole number when T is an integer type, else any real number.
// Fails with "expected a whole number from 1 to 100000, got '1.5'"; help shows "[lo, hi]".
CLI::Validator whole_range(long long lo, long long hi);
CLI::Validator real_range(double lo, double hi);
template <class T>
CLI::Validator range(T lo, T hi) {
  if constexpr (std::is_integral_v<T>)
    return whole_range(static_cast<long long>(lo), static_cast<long long>(hi));
  else
    return real_range(static_cast<double>(lo), static_cast<double>(hi));
}

// `mnistctl` alone: the subcommands, one line each.
std::string short_usage(const CLI::App& app);
// docs/cli.md: every visible subcommand, option, default and footer.
std::string markdown(const CLI::App& app);
// A bash completion script (subcommands, each one's flags, choice values, file names).
std::string bash_completion(const CLI::App& app);

// How docs/cli.md is regenerated (written into it, and into the test that checks it).
inline constexpr const char* kRegenerateDocs = "build/bin/mnistctl help --markdown > docs/cli.md";

}  // namespace mnistctl::cli
