// The one piece of JSON writing the project needs: a quoted, escaped string. Objects are
// written with fmt by their owners (metrics.jsonl, eval --json, predict --format json).
#pragma once

#include <cstdio>
#include <string>

namespace mnistctl {

inline std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      o += '\\';
      o += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += ch;
    }
  }
  return o + "\"";
}

}  // namespace mnistctl
