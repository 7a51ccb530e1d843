// The CPU backend on oneDNN 2.6 (--ctx cpu).
#pragma once
#include <memory>
#include "backend/backend.h"
namespace mnistctl {
// threads <= 0: all cores available to the process.
std::unique_ptr<Backend> make_dnnl_backend(int threads, Precision precision = Precision::fp32);
// The reason this CPU cannot run `precision` natively, or "" when it can.
std::string dnnl_precision_gap(Precision precision);
}
