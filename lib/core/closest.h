// "Did you mean": the one closest-match rule shared by the config loader (YAML keys and
// enum values) and the command line (subcommands, flags, choice values).
#pragma once

#include <string>
#include <vector>

namespace mnistctl {

// `s` with ASCII letters in lower case (bytes outside ASCII unchanged): the case folding of
// closest_match, for every name compared case-insensitively (extensions, URL schemes, --ctx).
std::string ascii_lower(std::string s);

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate `word` most likely meant, or "" when none is close enough to be a typo:
// an edit distance of about one per three characters (at most 3), case-insensitive; or a
// candidate the word abbreviates or extends ("fashion" -> "fashion-mnist",
// "evaluate" -> "eval"), at least three characters in common.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace mnistctl
