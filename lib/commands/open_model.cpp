#include "commands/open_model.h"

namespace mnistctl {

OpenModel open_model(const RunContext& run, const std::string& model_path, const std::string& checkpoint) {
  BackendOptions bo;
  bo.threads = run.threads;
  OpenModel om;
  om.backend = make_backend(run.ctx, bo);
  om.model = load_model(model_path, *om.backend, kInferenceBatch, checkpoint);
  return om;
}

}  // namespace mnistctl
