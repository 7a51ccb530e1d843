// What --force may not replace: an output file that is one of the command's own inputs
// (`export --model RUN --output RUN/last.ckpt`, `predict --input a.png --output a.png`), or
// one of a run's own files (checkpoints, config, metrics), whose loss would lose the run.
// --force is for a user's other files; these are refused with exit 2 before anything is
// read or written. (report, which has no --force, refuses another run's files the same way.)
#pragma once

#include <string>
#include <vector>

namespace mnistctl {

// Throws UsageError naming `output` and what it is: the same file as one of `inputs` or as the
// checkpoint that `model` and `checkpoint` (--model, --checkpoint) name (paths that do not
// exist, or are folders, are skipped; a model that cannot be resolved is the loader's to
// report), or a file of the run in its folder.
void check_output_is_not_input(const std::string& output, std::vector<std::string> inputs, const std::string& model,
                               const std::string& checkpoint);

}  // namespace mnistctl
