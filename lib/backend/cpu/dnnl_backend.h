// The CPU backend on oneDNN 2.6 (--ctx cpu).
#pragma once
#include <memory>
#include "backend/backend.h"
namespace mnistctl {
// threads <= 0: all cores available to the process.
std::unique_ptr<Backend> make_dnnl_backend(int threads);
}
