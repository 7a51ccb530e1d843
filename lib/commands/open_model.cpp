#include "commands/open_model.h"

#include <fmt/format.h>

#include "core/error.h"
#include "data/catalog.h"

namespace mnistctl {

OpenModel open_model(const RunContext& run, const std::string& model_path, const std::string& checkpoint) {
  BackendOptions bo;
  bo.threads = run.threads;
  OpenModel om;
  om.backend = make_backend(run.ctx, bo);
  om.model = load_model(model_path, *om.backend, kInferenceBatch, checkpoint);
  return om;
}

std::string test_dataset_for(const Model& m, const std::string& requested) {
  const std::string name = requested.empty() ? m.config.data.dataset : requested;
  const DatasetInfo& d = find_dataset(name);
  // The images go in as rows of rows*cols values whatever the shape network.input gives them
  // ([1, 28, 28], [28, 28] or [784]): train accepts any shape of that size, and so does this.
  const Shape in = m.net->input_shape();
  if (m.net->num_classes() != d.classes || in.numel() != d.rows * d.cols)
    throw UsageError(fmt::format("{}: {} has {} classes of {}x{} images ({} values each), but the model {} takes {} "
                                 "({} values) and has {} outputs (it was trained on {})",
                                 requested.empty() ? m.path : "--dataset " + name, name, d.classes, d.rows, d.cols,
                                 d.rows * d.cols, m.path, in.str(), in.numel(), m.net->num_classes(),
                                 m.config.data.dataset));
  return name;
}

}  // namespace mnistctl
