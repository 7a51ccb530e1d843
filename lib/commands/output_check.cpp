// Outputs that --force may not replace (output_check.h).
#include "commands/output_check.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "train/model.h"
#include "train/run_folder.h"

namespace mnistctl {

namespace fs = std::filesystem;

void check_output_is_not_input(const std::string& output, std::vector<std::string> inputs, const std::string& model,
                               const std::string& checkpoint) {
  if (output.empty()) return;  // stdout
  std::error_code ec;
  if (!fs::is_regular_file(output, ec)) return;  // nothing there yet (or a device): nothing to lose
  // A symbolic link is written through (core/atomic_file.h): what is replaced is its target.
  const std::string target = through_links(output);
  const std::string named = target == output ? output : fmt::format("{} (a link to {})", output, target);
  inputs.push_back(model);
  try {
    inputs.push_back(resolve_checkpoint(model, checkpoint));  // --checkpoint FILE included
  } catch (const Error&) {
    // the command's loader says what is wrong with the model
  }
  for (const std::string& in : inputs) {
    if (in.empty() || !fs::is_regular_file(in, ec)) continue;
    if (fs::equivalent(output, in, ec))
      throw UsageError(fmt::format("--output {}: is the same file as the input {}; give another --output", named, in));
  }
  // A run's own file: the output's folder, or the one above it for checkpoints/epoch-NNN.ckpt.
  // Looked up on the absolute path, named as the user wrote it.
  const fs::path abs = fs::absolute(target, ec).lexically_normal();
  const fs::path given = fs::path(target).lexically_normal();
  fs::path dir = abs.parent_path(), shown = given.parent_path();
  for (int up = 1; up <= 2; ++up, dir = dir.parent_path(), shown = shown.parent_path()) {
    const std::string rel = abs.lexically_relative(dir).generic_string();
    const std::vector<std::string> files = run_files(dir.string());
    if (std::find(files.begin(), files.end(), rel) != files.end())
      throw UsageError(fmt::format("--output {}: is the {} of the run in {}; a run's own files are not replaced, "
                                   "--force or not (give a path outside them)",
                                   named, rel, shown.empty() || shown.filename() == ".." ? dir.string() : shown.string()));
  }
}

}  // namespace mnistctl
