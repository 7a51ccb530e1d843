// tanh and relu, forward and backward, as AVX-512 loops for the CPU backend (the other
// activations stay on oneDNN). oneDNN 2.6's eltwise primitives ran LeNet's tanh slower than
// these loops do: one rational function, with no division, per 16 elements
// (docs/performance.md, section 6).
//
// tanh is the rational approximation x P(x^2) / Q(x^2) (degrees 13 and 6) that Eigen and
// ONNX Runtime use, +-1 from |x| = 9, x below |x| = 0.0004; NaN stays NaN. Its error against
// the exact tanh is a few units in the last place (test_eltwise measures it).
// relu is x > 0 ? x : 0 (NaN gives 0, as the reference). The backward passes use the
// forward's output y: tanh's dx = dy * (1 - y * y), relu's dx = dy * (y > 0 ? 1 : 0) (so a NaN
// or Inf dy gives NaN, as the reference); dx may alias dy.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace mnistctl::cpu {

// Whether act_forward / act_backward below run `a` here (AVX-512F, and tanh or relu).
bool eltwise_supported(ActType a);

// y = f(x) for n elements, on up to `threads` OpenMP threads. Results do not depend on the
// thread count.
void eltwise_forward(ActType a, const float* x, float* y, int64_t n, int threads);

// dx = dy * f'(x), from y = f(x).
void eltwise_backward(ActType a, const float* y, const float* dy, float* dx, int64_t n, int threads);

}  // namespace mnistctl::cpu
