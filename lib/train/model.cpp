#include "train/model.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "data/batch.h"
#include "train/run_folder.h"

namespace mnistctl {

double inference_budget_bytes() { return physical_memory_bytes() / 4; }

std::string resolve_checkpoint(const std::string& p, const std::string& which) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (which == "best" || which == "last") {
    if (p.empty()) throw UsageError(fmt::format("--checkpoint {}: of which run? give --model RUN", which));
    if (!fs::is_directory(p, ec))
      throw UsageError(fmt::format("--checkpoint {}: --model {} is not a run folder", which, p));
    std::string file = (fs::path(p) / (which + ".ckpt")).string();
    if (!fs::exists(file, ec)) {
      const bool has_last = fs::exists(fs::path(p) / "last.ckpt", ec);
      const std::string kept = newest_epoch_checkpoint(p);
      std::string why;
      if (!kept.empty() && (which == "last" || !has_last))
        why = fmt::format("its newest checkpoint is {}: give that file instead", kept);
      else if (which == "last")
        why = "has it trained an epoch?";
      else
        why = has_last ? "it is written at the end of an epoch: this run has not finished one, or was trained before "
                         "best.ckpt existed; --checkpoint last takes last.ckpt"
                       : "it is written at the end of an epoch: this run has not finished one";
      throw UsageError(fmt::format("{}: no {}.ckpt in this run folder ({})", p, which, why));
    }
    return file;
  }
  if (!which.empty()) {
    fs::path file(which);
    if (!p.empty() && file.is_relative() && fs::is_directory(p, ec) && fs::exists(fs::path(p) / file, ec)) {
      file = fs::path(p) / file;  // checkpoints/epoch-003.ckpt of the run
    } else {
      if (fs::is_directory(file, ec))
        throw UsageError(fmt::format("--checkpoint {}: is a folder, expected a .ckpt file", which));
      if (!fs::exists(file, ec))
        throw UsageError(fmt::format("--checkpoint {}: no such checkpoint file{}", which,
                                     p.empty() ? "" : " (nor in " + p + ")"));
    }
    // With --model too, the file must belong to that run (../other/last.ckpt does not):
    // otherwise one of the two is a mistake, and scoring the file while naming the run would
    // hide it.
    if (!p.empty()) {
      const fs::path run = fs::weakly_canonical(p, ec), canon = fs::weakly_canonical(file, ec);
      const bool inside = fs::is_directory(p, ec) &&
                          std::mismatch(run.begin(), run.end(), canon.begin(), canon.end()).first == run.end();
      if (!inside)
        throw UsageError(fmt::format("--checkpoint {}: not a checkpoint of --model {}: give --checkpoint FILE alone, "
                                     "or a checkpoint of that run",
                                     which, p));
    }
    return file.string();
  }
  if (p.empty()) throw UsageError("which model? give --model RUN (a run folder or checkpoint file)");
  if (fs::is_directory(p, ec)) {
    std::string last = (fs::path(p) / "last.ckpt").string();
    if (!fs::exists(last, ec)) {
      if (const std::string kept = newest_epoch_checkpoint(p); !kept.empty())
        throw UsageError(fmt::format("{}: no last.ckpt in this run folder; its newest checkpoint is {}: give that "
                                     "file instead",
                                     p, kept));
      throw UsageError(fmt::format("{}: no last.ckpt in this run folder (has it trained an epoch?)", p));
    }
    return last;
  }
  if (!fs::exists(p, ec)) throw UsageError(fmt::format("{}: no such checkpoint file or run folder", p));
  return p;
}

void check_params(const Network& net, const Checkpoint& ckpt, const std::string& source) {
  for (const auto& l : net.layers())
    for (const Param& p : l->params()) {
      const NamedTensor* t = ckpt.find("param/" + p.name);
      if (!t) throw UsageError(fmt::format("{}: checkpoint has no parameter '{}'", source, p.name));
      if (t->shape != p.shape)
        throw UsageError(fmt::format("{}: parameter '{}' has shape {} in the checkpoint, the network "
                                     "expects {}",
                                     source, p.name, t->shape.dims.empty() ? "[] (a scalar)" : t->shape.str(),
                                     p.shape.str()));
    }
}

void load_params(Network& net, const Checkpoint& ckpt, const std::string& source) {
  check_params(net, ckpt, source);
  for (Param* p : net.params()) net.backend().upload(p->value, ckpt.find("param/" + p->name)->data.data());
}

Model load_model(const std::string& run_dir_or_file, Backend& be, int64_t max_batch, const std::string& which) {
  Model m;
  m.path = resolve_checkpoint(run_dir_or_file, which);
  const Checkpoint ckpt = load_checkpoint(m.path);  // weights are copied out; the rest is not kept
  m.config = load_config_text(ckpt.config_yaml, m.path + " (embedded config)");
  // Shapes only until the checkpoint's tensors match the network and the memory fits: the
  // config inside a checkpoint may declare anything, the tensors must really be in the file.
  m.net = std::make_unique<Network>(m.config.network);
  // Training needs a loss layer last, so a network without one was edited: its outputs would
  // not be probabilities, and eval and predict would report them as such.
  if (m.net->layers().empty() || !m.net->has_loss())
    throw UsageError(fmt::format("{} (embedded config): the network must end in a loss layer (softmax_output) for "
                                 "class probabilities; its last layer is '{}'",
                                 m.path, m.net->layers().empty() ? std::string("none") : m.net->layers().back()->name()));
  check_params(*m.net, ckpt, m.path);
  m.net->check_fits(max_batch, inference_budget_bytes(), m.path + " (embedded config)", Network::Use::inference);
  m.net->bind(be, max_batch, /*training=*/false);
  load_params(*m.net, ckpt, m.path);
  return m;
}

void run_inference(Network& net, Backend& be, std::vector<uint8_t>&& images, int64_t count,
                   int64_t sample_size, int64_t batch, const ProbSink& sink) {
  if (sample_size != net.input_shape().numel())
    throw UsageError(fmt::format("images have {} pixels, the network expects {} ({})", sample_size,
                                 net.input_shape().numel(), net.input_shape().str()));
  if (static_cast<int64_t>(images.size()) != count * sample_size)
    throw std::logic_error("run_inference: image bytes do not match count x sample_size");
  Buffer img = be.adopt_bytes(std::move(images));
  std::vector<uint8_t> zeros(static_cast<size_t>(count), 0);
  Buffer lab = be.alloc_bytes(zeros.size());
  be.upload_bytes(lab, zeros.data(), zeros.size());
  const std::vector<int32_t> order = epoch_order(count, /*shuffle=*/false, 0, 0);  // in file order
  Buffer ord = be.alloc_bytes(order.size() * sizeof(int32_t));
  be.upload_bytes(ord, order.data(), order.size() * sizeof(int32_t));

  Shape in = net.input_shape();
  int64_t classes = net.num_classes();
  Tensor x = be.empty(Shape{batch, in.numel()});
  Tensor labels = be.empty(Shape{batch});
  std::vector<float> probs(static_cast<size_t>(batch * classes));
  Pass pass;  // inference: no labels, no metrics
  for (int64_t b = 0; b < num_batches(count, batch); ++b) {
    BatchRange r = batch_range(count, batch, b);
    Tensor xv = x.view(batched(r.n, in)), lv = labels.view(Shape{r.n});
    be.gather_batch(img, lab, sample_size, ord, r.first, r.n, xv, lv);
    const Tensor& y = net.forward(xv, pass);
    be.download(y, probs.data());
    sink(r.first, r.n, probs.data());
  }
}

}  // namespace mnistctl
