// The one piece of JSON writing the project needs: a quoted, escaped string. Objects are
// written with fmt by their owners (metrics.jsonl, eval --json, predict --format json).
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace mnistctl {

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 where the bytes there are not one.
inline size_t utf8_sequence(const std::string& s, size_t i) {
  auto at = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned c = at(i);
  size_t n = 0;
  unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return n;
}

// A JSON string literal for `s`. Bytes that are not UTF-8 (a file name from another
// encoding) become U+FFFD, so that the output stays valid JSON.
inline std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      o += '\\';
      o += s[i++];
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
      ++i;
    } else if (c < 0x80) {
      o += s[i++];
    } else if (const size_t n = utf8_sequence(s, i); n > 0) {
      o.append(s, i, n);
      i += n;
    } else {
      o += "\\ufffd";
      ++i;
    }
  }
  return o + "\"";
}

}  // namespace mnistctl
