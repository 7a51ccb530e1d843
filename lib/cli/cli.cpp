// See cli.h. CLI11 reports an unknown subcommand as "A subcommand is required" and an unknown
// flag as "arguments were not expected", without a hint; so when it fails, the arguments are
// walked once more against the command tree to name the first word that matches nothing,
// and core/closest.h (the rule the YAML loader uses too) picks the likely intended one.
// CLI11 2.1 also takes "-1" after `--threads` for a flag of its own ("unknown option -1"), so a
// negative number that follows a flag expecting a value is joined to it first (`--threads=-1`),
// and a missing required argument is named after what the user passes, with the usage line.
#include "cli/cli.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include <fmt/format.h>

#include "core/closest.h"
#include "core/error.h"

namespace mnistctl::cli {
namespace {

const char* kProg = "mnistctl";

bool visible(const CLI::App* sub) { return !sub->get_group().empty() && !sub->get_disabled(); }

std::vector<const CLI::App*> visible_subcommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return visible(s); });
}

std::vector<const CLI::Option*> flags_of(const CLI::App& app) {
  return app.get_options([](const CLI::Option* o) { return !o->get_positional(); });
}

std::vector<std::string> names_of(const CLI::Option* o) {
  std::vector<std::string> n;
  for (const auto& l : o->get_lnames()) n.push_back("--" + l);
  for (const auto& s : o->get_snames()) n.push_back("-" + s);
  return n;
}

std::vector<std::string> long_flags(const CLI::App& app) {
  std::vector<std::string> n;
  for (const auto* o : flags_of(app))
    for (const auto& l : o->get_lnames()) n.push_back("--" + l);
  return n;
}

// "{a,b,c}" (one_of's description) -> {a, b, c}.
std::vector<std::string> choices_of(const CLI::Option* o) {
  std::string t = o->get_type_name();
  auto open = t.find('{'), close = t.rfind('}');
  std::vector<std::string> c;
  if (open == std::string::npos || close == std::string::npos || close < open) return c;
  std::string item;
  for (size_t i = open + 1; i <= close; ++i) {
    if (t[i] == ',' || i == close) {
      if (!item.empty() && item.find('<') == std::string::npos) c.push_back(item);
      item.clear();
    } else {
      item += t[i];
    }
  }
  return c;
}

std::string command_path(const CLI::App* a) {
  std::string p;
  for (; a != nullptr; a = a->get_parent()) p = (a->get_parent() ? a->get_name() : std::string(kProg)) + (p.empty() ? "" : " " + p);
  return p;
}

// The subcommand the parse reached (the app itself when none).
const CLI::App* where_parsed(const CLI::App& app) {
  const CLI::App* where = &app;
  while (!where->get_subcommands().empty()) where = where->get_subcommands().front();
  return where;
}

// "mnistctl export --model RUN|FILE --output FILE [OPTIONS]": required flags and positionals
// as the user types them; optional positionals in brackets.
std::string usage_line(const CLI::App* a) {
  std::string usage = command_path(a);
  bool optional_flags = false;
  for (const auto* o : flags_of(*a)) {
    if (!o->get_required()) {
      optional_flags = optional_flags || o->get_lnames().empty() || o->get_lnames().front() != "help";
      continue;
    }
    usage += " " + names_of(o).front();
    if (o->get_expected_max() != 0) usage += " " + o->get_type_name();
  }
  for (const auto* o : a->get_options([](const CLI::Option* o) { return o->get_positional(); }))
    usage += fmt::format(" {}{}{}", o->get_required() ? "" : "[", o->get_name(), o->get_required() ? "" : "]");
  if (optional_flags) usage += " [OPTIONS]";
  return usage;
}

// "A run folder or checkpoint file; it may ..." -> "a run folder or checkpoint file".
std::string what_it_is(const CLI::Option* o) {
  std::string d = o->get_description().substr(0, o->get_description().find(';'));
  if (!d.empty()) d[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(d[0])));
  return d;
}

// After CLI11's "X is required": "info needs RUN|FILE, a run folder or checkpoint file:
// mnistctl info RUN|FILE [OPTIONS]" for the first required argument that was not given.
std::string missing_required(const CLI::App& app) {
  const CLI::App* where = where_parsed(app);
  for (const auto* o : where->get_options([](const CLI::Option* o) { return o->get_required() && o->count() == 0; })) {
    std::string name = o->get_positional() ? o->get_name() : names_of(o).front() + " " + o->get_type_name();
    std::string what = what_it_is(o);
    return fmt::format("{} needs {}{}: {}", where->get_parent() ? where->get_name() : std::string(kProg), name,
                       what.empty() ? "" : ", " + what, usage_line(where));
  }
  return "";
}

// After CLI11's "--epochs: 1 required INT:[1, 100000] missing": "--epochs needs a value:
// INT [1, 100000]". Empty when the message is another mismatch.
std::string missing_value(const CLI::App& app, const std::string& what) {
  const CLI::App* where = where_parsed(app);
  const std::string name = what.substr(0, what.find(':'));
  const CLI::Option* o = where->get_option_no_throw(name);
  if (o == nullptr || what.find(" required ") == std::string::npos || what.find(" missing") == std::string::npos)
    return "";
  std::string type = o->get_type_name();
  for (char& c : type)
    if (c == ':') c = ' ';
  return fmt::format("{} needs a value: {}", name, type);
}

bool negative_number(const std::string& s) {
  return s.size() > 1 && s[0] == '-' &&
         (std::isdigit(static_cast<unsigned char>(s[1])) ||
          (s[1] == '.' && s.size() > 2 && std::isdigit(static_cast<unsigned char>(s[2]))));
}

// `--threads -1` -> `--threads=-1` (`-t -1` -> `-t-1`), where the flag takes a value and no
// flag is named "-1": CLI11 would otherwise read the number as an unknown flag.
std::vector<std::string> join_negative_values(const CLI::App& app, const std::vector<std::string>& args) {
  const CLI::App* cur = &app;
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    out.push_back(a);
    if (a == "--") {
      out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (a.size() > 1 && a[0] == '-') {
      if (a.find('=') != std::string::npos) continue;
      const CLI::Option* o = cur->get_option_no_throw(a);
      if (o == nullptr || o->get_expected_max() == 0) continue;
      if (i + 1 < args.size() && negative_number(args[i + 1]) && cur->get_option_no_throw(args[i + 1]) == nullptr &&
          (a[1] == '-' || a.size() == 2))
        out.back() += (a[1] == '-' ? "=" : "") + args[++i];
      continue;
    }
    for (const auto* s : cur->get_subcommands([](const CLI::App*) { return true; }))
      if (s->check_name(a)) {
        cur = s;
        break;
      }
  }
  return out;
}

std::string with_hint(std::string msg, const std::string& hint) {
  if (!hint.empty()) msg += fmt::format(" (did you mean '{}'?)", hint);
  return msg;
}

// The first argument that names no subcommand or flag of where it stands, as one line;
// empty when every word is known (CLI11's own message is then the better one).
std::string diagnose(const CLI::App& app, const std::vector<std::string>& args) {
  const CLI::App* cur = &app;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    if (a.size() > 1 && a[0] == '-') {
      std::string name = a.substr(0, a.find('='));
      const CLI::Option* o = cur->get_option_no_throw(name);
      if (o == nullptr) {
        std::vector<std::string> words = long_flags(*cur);
        std::string bare = name.substr(name.find_first_not_of('-'));
        std::vector<std::string> bare_words;
        for (const auto& w : words) bare_words.push_back(w.substr(2));
        std::string hint = closest_match(bare, bare_words);
        return with_hint(cur->get_parent() ? fmt::format("{}: unknown option {}", cur->get_name(), name)
                                           : fmt::format("unknown option {}", name),
                         hint.empty() ? "" : "--" + hint);
      }
      if (a.find('=') != std::string::npos || o->get_expected_max() == 0) continue;
      // Skip the option's value(s): one, or every following word for a list option.
      int take = o->get_items_expected_max() > 1 ? 1 << 30 : 1;
      while (take-- > 0 && i + 1 < args.size() && !(args[i + 1].size() > 1 && args[i + 1][0] == '-')) ++i;
      continue;
    }
    // A plain word: a subcommand where one is expected, else a positional value.
    std::vector<std::string> subs;
    for (const auto* s : visible_subcommands(*cur)) subs.push_back(s->get_name());
    const CLI::App* next = nullptr;
    for (const auto* s : cur->get_subcommands([](const CLI::App*) { return true; }))
      if (s->check_name(a)) next = s;
    if (next != nullptr) {
      cur = next;
      continue;
    }
    bool takes_positionals = !cur->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
    if (takes_positionals) continue;
    if (!subs.empty())
      return with_hint(fmt::format("unknown command '{}' for {}", a, command_path(cur)), closest_match(a, subs));
    return "";
  }
  return "";
}

const CLI::App* find_sub(const CLI::App& app, const std::string& name) {
  for (const auto* s : app.get_subcommands([](const CLI::App*) { return true; }))
    if (s->get_name() == name) return s;
  return nullptr;
}

void print_out(const std::string& s) {
  std::fputs(s.c_str(), stdout);
  if (!s.empty() && s.back() != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string help_of(const CLI::App* a) {
  return a->get_formatter()->make_help(a, command_path(a), CLI::AppFormatMode::Normal);
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string md_cell(std::string s) {
  std::string o;
  for (char c : s) {
    if (c == '|') o += "\\|";
    else if (c == '\n') o += "<br>";
    else o += c;
  }
  return o;
}

void markdown_command(const CLI::App* a, std::string& md) {
  md += fmt::format("## `{}`\n\n{}\n\n", command_path(a), a->get_description());
  md += fmt::format("```\n{}\n```\n\n", usage_line(a));
  auto opts = a->get_options([](const CLI::Option*) { return true; });
  if (!opts.empty()) {
    md += "| option | value | default | description |\n|---|---|---|---|\n";
    for (const auto* o : opts) {
      std::string name;
      if (o->get_positional()) {
        name = o->get_name();
      } else {
        for (const auto& n : names_of(o)) name += (name.empty() ? "" : ", ") + n;
      }
      std::string value = o->get_expected_max() == 0 ? "" : o->get_type_name();
      std::string desc = o->get_description();
      if (o->get_required()) desc += " (required)";
      if (o->get_items_expected_max() > 1 && !o->get_positional() && desc.find("repeatable") == std::string::npos)
        desc += " (repeatable)";
      md += fmt::format("| `{}` | {} | {} | {} |\n", md_cell(name), md_cell(value),
                        o->get_default_str().empty() ? "" : "`" + md_cell(o->get_default_str()) + "`",
                        md_cell(desc));
    }
    md += "\n";
  }
  std::string footer = a->get_footer();
  while (!footer.empty() && footer.front() == '\n') footer.erase(footer.begin());
  while (!footer.empty() && footer.back() == '\n') footer.pop_back();
  if (!footer.empty()) md += fmt::format("```text\n{}\n```\n\n", footer);
}

// Bash: `a|b|c` case patterns and space-separated word lists.
std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace

CLI::Validator one_of(std::vector<std::string> allowed) {
  std::string desc = "{" + join(allowed, ",") + "}";
  return CLI::Validator(
      [allowed](std::string& v) -> std::string {
        for (const auto& a : allowed)
          if (a == v) return "";
        return with_hint(fmt::format("expected one of {}, got '{}'", join(allowed, ", "), v),
                         closest_match(v, allowed));
      },
      desc);
}

CLI::Validator checked(std::function<std::string(const std::string&)> problem, std::vector<std::string> choices) {
  return CLI::Validator([problem](std::string& v) { return problem(v); },
                        choices.empty() ? std::string() : "{" + join(choices, ",") + "}");
}

namespace {
// A number of type T from lo to hi, parsed whole (from_chars: no trailing text); `kind` names
// what is expected ("a whole number", "a number"). NaN fails the comparison.
template <class T>
CLI::Validator bounded(T lo, T hi, const char* kind) {
  return CLI::Validator(
      [lo, hi, kind](std::string& v) -> std::string {
        T x{};
        const char* end = v.data() + v.size();
        auto [p, ec] = std::from_chars(v.data(), end, x);
        if (ec == std::errc() && p == end && x >= lo && x <= hi) return "";
        return fmt::format("expected {} from {} to {}, got '{}'", kind, lo, hi, v);
      },
      fmt::format("[{}, {}]", lo, hi));
}
}  // namespace

CLI::Validator whole_range(long long lo, long long hi) { return bounded(lo, hi, "a whole number"); }
CLI::Validator real_range(double lo, double hi) { return bounded(lo, hi, "a number"); }

void add_builtin_commands(CLI::App& app) {
  // Their own footers: a subcommand inherits the parent's (mnistctl's examples) otherwise.
  auto* h = app.add_subcommand("help", "Show the usage of mnistctl or of one command");
  h->add_option("COMMAND", "The command to describe (default: all of mnistctl)");
  h->add_flag("--markdown", "Write docs/cli.md (every command and option, in Markdown) to stdout");
  h->footer(fmt::format("\nExamples:\n  {0} help train\n  {1}\n'{0} COMMAND --help' shows the same as '{0} help COMMAND'.",
                        kProg, kRegenerateDocs));
  auto* c = app.add_subcommand("completion", "Write a shell completion script to stdout");
  c->add_option("SHELL", "The shell to write it for (only bash)")->check(one_of({"bash"}))->required();
  c->footer(fmt::format("\nExamples:\n  source <({0} completion bash)\n"
                        "The build installs the script as share/bash-completion/completions/{0}.",
                        kProg));
}

std::string short_usage(const CLI::App& app) {
  std::string s = fmt::format("Usage: {} COMMAND [OPTIONS]\n\nCommands:\n", kProg);
  size_t w = 0;
  for (const auto* sub : visible_subcommands(app)) w = std::max(w, sub->get_name().size());
  for (const auto* sub : visible_subcommands(app))
    s += fmt::format("  {:<{}}  {}\n", sub->get_name(), w, sub->get_description());
  s += fmt::format("\n'{0} help COMMAND' (or '{0} COMMAND --help') shows a command's options; "
                   "'{0} --version' the build.\n",
                   kProg);
  return s;
}

namespace {
// A standard stream the process was started without (`mnistctl train >&-`) gets /dev/null,
// opened read-only: the number is taken, so no file the command opens later (a run folder's
// lock) becomes its stdout and receives its lines, while a write to it still fails (EBADF)
// and is reported as for the closed stream (finish_output).
void hold_standard_streams() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int got = ::open("/dev/null", O_RDONLY);
    if (got >= 0 && got != fd) {  // a lower number was free after all: put it where it belongs
      ::dup2(got, fd);
      ::close(got);
    }
  }
}
}  // namespace

int parse(CLI::App& app, int argc, char** argv) {
  hold_standard_streams();
  if (argc <= 1) {
    std::fputs(short_usage(app).c_str(), stderr);
    return kExitUsage;
  }
  const std::vector<std::string> args = join_negative_values(app, std::vector<std::string>(argv + 1, argv + argc));
  // `--out=` (an unset variable after the '='): CLI11 would take the next argument as its value.
  for (const std::string& a : args) {
    if (a == "--") break;  // what follows are operands, not options
    if (a.size() > 3 && a.compare(0, 2, "--") == 0 && a.back() == '=' && a.find('=') == a.size() - 1) {
      std::fprintf(stderr, "%s: %s: empty value (an unset variable?); give a value or leave the option out\n", kProg,
                   a.substr(0, a.size() - 1).c_str());
      return kExitUsage;
    }
  }
  try {
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 takes them last first
  } catch (const CLI::ParseError& err) {
    // --help and --version arrive as "errors" with exit code 0: CLI11 prints them.
    if (err.get_exit_code() == 0) return app.exit(err);
    std::string line = diagnose(app, args);
    if (line.empty() && dynamic_cast<const CLI::RequiredError*>(&err) != nullptr) line = missing_required(app);
    if (line.empty() && dynamic_cast<const CLI::ArgumentMismatch*>(&err) != nullptr) {
      line = missing_value(app, err.what());
      if (!line.empty()) line = fmt::format("{} (see {} --help)", line, command_path(where_parsed(app)));
    }
    if (line.empty()) {
      // CLI11's wording for a single-value flag given twice, in the project's terms.
      std::string what = err.what();
      const std::string twice = "At Most 1 required but received ";
      if (const size_t at = what.find(twice); at != std::string::npos)
        what = what.substr(0, at) + "given " + what.substr(at + twice.size()) + " times, expected once";
      line = fmt::format("{} (see {} --help)", what, command_path(where_parsed(app)));
    }
    std::fprintf(stderr, "%s: %s\n", kProg, line.c_str());
    return kExitUsage;
  }

  // An empty value (`--output ""`, an unset shell variable) would quietly mean "the default"
  // (stdout, the default run folder): every option that takes a value refuses one.
  for (const CLI::App* a = &app; a != nullptr;) {
    for (const CLI::Option* opt : a->get_options()) {
      if (opt->count() == 0 || opt->get_type_size_max() == 0) continue;  // not given, or a flag
      for (const std::string& v : opt->results())
        if (v.empty()) {
          std::fprintf(stderr, "%s: %s: empty value (an unset variable?); give a value or leave the option out (see %s --help)\n",
                       kProg, opt->get_name().c_str(), command_path(a).c_str());
          return kExitUsage;
        }
    }
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : a->get_subcommands([](const CLI::App* x) { return x->parsed(); })) next = sub;
    a = next;
  }
  if (const CLI::App* h = find_sub(app, "help"); h && h->parsed()) {
    if (h->count("--markdown") > 0) {
      print_out(markdown(app));
      return kExitOk;
    }
    const CLI::Option* cmd = h->get_option("COMMAND");
    if (cmd->count() == 0) {
      print_out(help_of(&app));
      return kExitOk;
    }
    const std::string name = cmd->as<std::string>();
    std::vector<std::string> subs;
    for (const auto* s : visible_subcommands(app)) {
      if (s->check_name(name)) {
        print_out(help_of(s));
        return kExitOk;
      }
      subs.push_back(s->get_name());
    }
    std::fprintf(stderr, "%s: %s\n", kProg,
                 with_hint(fmt::format("help: unknown command '{}'", name), closest_match(name, subs)).c_str());
    return kExitUsage;
  }
  if (const CLI::App* c = find_sub(app, "completion"); c && c->parsed()) {
    print_out(bash_completion(app));
    return kExitOk;
  }
  return -1;
}

std::string markdown(const CLI::App& app) {
  std::string md = fmt::format(
      "# The `{0}` command line\n\n"
      "<!-- Generated from the command tree: do not edit. Regenerate with\n"
      "     {1}\n"
      "     (the ctest test \"cli:docs/cli.md matches the command tree\" fails when it is stale). -->\n\n"
      "{2}\n\n"
      "`{0} --version` prints the build (version, commit, compiler, oneDNN, CUDA module); "
      "`{0} help [COMMAND]` the usage; `{0}` alone the list of commands. Bash completion is "
      "installed by the build (`share/bash-completion/completions/{0}`).\n\n",
      kProg, kRegenerateDocs, trimmed(app.get_description()));
  md += "| command | what it does |\n|---|---|\n";
  for (const auto* s : visible_subcommands(app))
    md += fmt::format("| [`{}`](#{}-{}) | {} |\n", s->get_name(), kProg, s->get_name(), md_cell(s->get_description()));
  md += "\n";
  for (const auto* s : visible_subcommands(app)) markdown_command(s, md);
  while (md.size() > 1 && md[md.size() - 1] == '\n' && md[md.size() - 2] == '\n') md.pop_back();
  return md;
}

std::string bash_completion(const CLI::App& app) {
  std::vector<std::string> subs;
  for (const auto* s : visible_subcommands(app)) subs.push_back(s->get_name());
  std::vector<std::string> top = subs;
  for (const auto& f : long_flags(app)) top.push_back(f);

  std::string cases;
  for (const auto* s : visible_subcommands(app)) {
    std::vector<std::string> flags = long_flags(*s), value_flags;
    std::string value_cases;
    for (const auto* o : flags_of(*s)) {
      if (o->get_expected_max() == 0) continue;
      std::vector<std::string> names = names_of(o);
      std::vector<std::string> choices = choices_of(o);
      if (choices.empty())  // a file, folder or number: leave it to bash's file-name completion
        value_cases += fmt::format("        {}) return ;;\n", join(names, "|"));
      else
        value_cases += fmt::format("        {}) COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return ;;\n",
                                   join(names, "|"), join(choices, " "));
    }
    std::string words = join(flags, " ");
    // A positional argument: help's is a command name; any other is a path, left to bash.
    std::string positional;
    if (s->get_name() == "help")
      words += " " + join(subs, " ");
    else if (!s->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty())
      positional = "      [[ \"$cur\" == -* ]] || return\n";
    cases += fmt::format("    {})\n      case \"$prev\" in\n{}      esac\n{}"
                         "      COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")) ;;\n",
                         s->get_name(), value_cases, positional, words);
  }
  return fmt::format(
      "# bash completion for {0}: written from its command tree by `{0} completion bash`\n"
      "# (the build installs it as share/bash-completion/completions/{0}).\n"
      "_{0}() {{\n"
      "  local cur=\"${{COMP_WORDS[COMP_CWORD]}}\" prev=\"\" cmd=\"\" i\n"
      "  (( COMP_CWORD > 0 )) && prev=\"${{COMP_WORDS[COMP_CWORD-1]}}\"\n"
      "  for (( i = 1; i < COMP_CWORD; i++ )); do\n"
      "    case \"${{COMP_WORDS[i]}}\" in {1}) cmd=\"${{COMP_WORDS[i]}}\"; break ;; esac\n"
      "  done\n"
      "  COMPREPLY=()\n"
      "  case \"$cmd\" in\n"
      "    \"\") COMPREPLY=($(compgen -W \"{2}\" -- \"$cur\")) ;;\n"
      "{3}"
      "  esac\n"
      "}}\n"
      "complete -o default -F _{0} {0}\n",
      kProg, join(subs, "|"), join(top, " "), cases);
}

int finish_output(int rc) {
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  const int err = errno;
  std::cout.flush();
  // A command that already failed has said why (train's SIGPIPE exit included): no second line.
  if (rc != kExitOk && rc != kExitGateFailed) return rc;
  if (flushed && !std::ferror(stdout) && std::cout.good()) return rc;
  std::fprintf(stderr, "%s: writing to standard output failed%s%s\n", kProg, err ? ": " : "",
               err ? std::strerror(err) : "");
  return kExitRuntime;
}

}  // namespace mnistctl::cli
