// Argument checks shared by the CPU backends (ref and oneDNN).
//
// Every op checks that the tensors it is handed hold as many elements as its descriptor
// says, and throws RuntimeError naming the op and the sizes otherwise: a layer that passes
// the wrong tensor gets a clear message instead of an out-of-bounds write. The checks cost
// a few compares per call, nothing next to the op itself.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "core/error.h"

namespace mnistctl::opcheck {

inline void numel(const char* op, const char* what, const Tensor& t, int64_t expected) {
  if (t.numel() != expected || (expected > 0 && t.data == nullptr))
    throw RuntimeError(std::string(op) + ": " + what + " has " + std::to_string(t.numel()) +
                       " elements (shape " + t.shape.str() + "), expected " +
                       std::to_string(expected));
}

inline void same(const char* op, const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel())
    throw RuntimeError(std::string(op) + ": tensors differ in size (" + a.shape.str() + " vs " +
                       b.shape.str() + ")");
}

inline void positive(const char* op, int64_t v, const char* what) {
  if (v <= 0) throw RuntimeError(std::string(op) + ": " + what + " must be positive");
}

inline void fc(const char* op, const FcDesc& d) {
  positive(op, d.n, "n");
  positive(op, d.in, "in");
  positive(op, d.out, "out");
}

inline void conv(const char* op, const ConvDesc& d) {
  positive(op, d.n, "n");
  positive(op, d.c, "c");
  positive(op, d.k, "k");
  positive(op, d.sh, "stride");
  positive(op, d.sw, "stride");
  if (d.ph < 0 || d.pw < 0) throw RuntimeError(std::string(op) + ": negative padding");
  if (d.kh <= 0 || d.kw <= 0 || d.oh() <= 0 || d.ow() <= 0 || d.h + 2 * d.ph < d.kh ||
      d.w + 2 * d.pw < d.kw)
    throw RuntimeError(std::string(op) + ": kernel " + std::to_string(d.kh) + "x" +
                       std::to_string(d.kw) + " does not fit the padded input " +
                       std::to_string(d.h) + "x" + std::to_string(d.w));
}

inline void pool(const char* op, const PoolDesc& d) {
  positive(op, d.n, "n");
  positive(op, d.c, "c");
  positive(op, d.sh, "stride");
  positive(op, d.sw, "stride");
  if (d.ph < 0 || d.pw < 0) throw RuntimeError(std::string(op) + ": negative padding");
  // A padding as large as the window would make windows that see only padding.
  if (d.kh <= 0 || d.kw <= 0 || d.ph >= d.kh || d.pw >= d.kw || d.h + 2 * d.ph < d.kh ||
      d.w + 2 * d.pw < d.kw)
    throw RuntimeError(std::string(op) + ": window " + std::to_string(d.kh) + "x" +
                       std::to_string(d.kw) + " (padding " + std::to_string(d.ph) + "," +
                       std::to_string(d.pw) + ") does not fit the input " + std::to_string(d.h) +
                       "x" + std::to_string(d.w));
}

}  // namespace mnistctl::opcheck
