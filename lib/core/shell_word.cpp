// See shell_word.h.
#include "core/shell_word.h"

#include <cctype>
#include <cstring>

namespace mnistctl {

std::string shell_word(const std::string& w) {
  bool plain = !w.empty();
  for (char c : w)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./=:,+-@%", c))) plain = false;
  if (plain) return w;
  std::string q = "'";
  for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace mnistctl
