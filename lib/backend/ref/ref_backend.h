// The reference backend: plain loops, no libraries, obviously right. Every other backend
// is tested against it op by op (test/backend/test_backend_ops.cpp).
#pragma once
#include <memory>
#include "backend/backend.h"
namespace mnistctl {
std::unique_ptr<Backend> make_ref_backend();
}
