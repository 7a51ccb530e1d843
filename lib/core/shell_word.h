// Commands shown to the user ("continue with: ...", "run `mnistctl fetch ...`") must work when
// pasted into a shell, whatever the paths hold.
#pragma once

#include <string>

namespace mnistctl {

// `w` as one POSIX shell word: unchanged when it holds only characters no shell treats
// specially, else in single quotes (a quote inside as '\'').
std::string shell_word(const std::string& w);

}  // namespace mnistctl
