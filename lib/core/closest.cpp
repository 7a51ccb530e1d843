// See closest.h.
#include "core/closest.h"

#include <algorithm>

namespace mnistctl {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string w = ascii_lower(word);
  // Allow about one typo per three characters, at most 3.
  size_t limit = std::max<size_t>(1, std::min<size_t>(3, w.size() / 3));
  std::string best;
  size_t best_d = limit + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(w, ascii_lower(c));
    if (d < best_d && d < w.size()) {  // replacing every letter is not a typo
      best_d = d;
      best = c;
    }
  }
  if (!best.empty() || w.size() < 3) return best;
  // No typo close enough: an abbreviation or a longer spelling of one candidate.
  for (const auto& c : candidates) {
    const std::string lc = ascii_lower(c);
    if (lc.size() >= 3 && (starts_with(lc, w) || starts_with(w, lc))) return c;
  }
  return "";
}

}  // namespace mnistctl
