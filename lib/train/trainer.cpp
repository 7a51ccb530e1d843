#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "data/batch.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "nn/network.h"
#include "train/checkpoint.h"
#include "train/collective.h"
#include "train/initializer.h"
#include "train/model.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace mnistctl {
namespace {

// The signal that asked the run to stop (SIGINT or SIGTERM), 0 while none did.
volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_stop_signal(int sig) {
  g_interrupted = sig;
  std::signal(sig, SIG_DFL);  // a second one ends the process at once
}

// Installs the handlers for the life of one training run: Ctrl-C, and the SIGTERM that
// timeout(1), CI runners and container stops send.
struct StopSignalGuard {
  StopSignalGuard() {
    g_interrupted = 0;
    prev_int_ = std::signal(SIGINT, on_stop_signal);
    prev_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignalGuard() {
    std::signal(SIGINT, prev_int_);
    std::signal(SIGTERM, prev_term_);
  }
  void (*prev_int_)(int);
  void (*prev_term_)(int);
};

int interrupted_exit_code() { return 128 + static_cast<int>(g_interrupted); }

// Dataset and epoch order living in backend memory.
struct DeviceData {
  Buffer images, labels, order;
  int64_t count = 0, sample_size = 0;
};

// Hands the dataset's bytes over to the backend (the host copy is gone afterwards: on the
// CPU the backend keeps the very same memory, so 52 MB of MNIST is never held twice).
DeviceData upload(Backend& be, Dataset& ds) {
  DeviceData d;
  d.count = ds.count;
  d.sample_size = ds.sample_size();
  d.images = be.adopt_bytes(std::move(ds.images));
  d.labels = be.adopt_bytes(std::move(ds.labels));
  d.order = be.alloc_bytes(static_cast<size_t>(ds.count) * sizeof(int32_t));
  return d;
}

void set_order(Backend& be, DeviceData& d, const std::vector<int32_t>& order) {
  be.upload_bytes(d.order, order.data(), order.size() * sizeof(int32_t));
}

struct Sums {
  double loss = 0, correct = 0, count = 0;
  double mean_loss() const { return count > 0 ? loss / count : 0.0; }
  double accuracy() const { return count > 0 ? correct / count : 0.0; }
};

Sums read_metrics(Backend& be, const Tensor& m) {
  float v[kMetricSlots];
  be.download(m, v);
  return Sums{v[kMetricLossSum], v[kMetricCorrect], v[kMetricCount]};
}

// ---- data parallelism (train/collective.h) ------------------------------------------------
// This rank's rows of a global batch: an equal share, the first (n % size) ranks one more
// (only a smaller last batch can be uneven: batch_size is a multiple of the rank count).
BatchRange rank_slice(const BatchRange& r, int rank, int size) {
  const int64_t q = r.n / size, extra = r.n % size;
  return BatchRange{r.first + rank * q + std::min<int64_t>(rank, extra), q + (rank < extra ? 1 : 0)};
}

// FNV-1a over the parameters' bytes: equal on every rank while the ranks agree.
uint64_t param_checksum(Network& net) {
  uint64_t h = 1469598103934665603ull;
  std::vector<float> v;
  for (Param* p : net.params()) {
    v.resize(static_cast<size_t>(p->value.numel()));
    net.backend().download(p->value, v.data());
    const auto* b = reinterpret_cast<const unsigned char*>(v.data());
    for (size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  return h;
}
// ---- end data parallelism ----------------------------------------------------------------

class Trainer {
 public:
  explicit Trainer(const TrainRequest& req)
      : req_(req), cfg_(req.config), t_(cfg_.train), coll_(req.collective ? *req.collective : single_) {}

  int run() {
    StopSignalGuard signals;
    Network net(cfg_.network);
    check_trainable(cfg_, net);

    Dataset train = load_split(req_.data_root, cfg_.data.dataset, Split::train, cfg_.data.train_limit);
    Dataset test = load_split(req_.data_root, cfg_.data.dataset, Split::test, cfg_.data.test_limit);
    // The files on disk must be the dataset the catalog describes (check_trainable used that).
    if (train.sample_size() != net.input_shape().numel() || test.sample_size() != train.sample_size())
      throw UsageError(fmt::format("{}: the {} files hold {}x{} images, expected {}", req_.data_root,
                                   cfg_.data.dataset, train.rows, train.cols, net.input_shape().str()));

    auto be = coll_.make_backend(req_.ctx, req_.backend);  // data parallelism: this rank's device
    if (g_interrupted) {
      out_line("interrupted before training started: nothing written");
      return interrupted_exit_code();
    }
    out_line(fmt::format("mnistctl train: {} on {} ({} training, {} test images), {} parameters", cfg_.name,
                         be->name(), train.count, test.count, net.param_count()));
    if (!coll_.describe().empty()) out_line(coll_.describe());
    net.bind(*be, t_.batch_size / coll_.size());  // this rank's share of a global batch
    Optimizer opt(t_.optimizer, *be, net.params());

    const std::string ckpt_dir = req_.out_dir + "/checkpoints";
    // One writer per run folder: a second train into it refuses (exit 2). Only rank 0 writes.
    std::optional<FolderLock> run_lock;
    if (root()) {
      make_dirs(ckpt_dir);
      run_lock.emplace(req_.out_dir, "the run folder");
    }
    const std::string last_path = req_.out_dir + "/last.ckpt";
    int64_t start_epoch = 0, start_batch = 0;
    std::vector<float> resumed_sums;
    if (req_.resume && root()) {  // data parallelism: rank 0 reads, then broadcasts (below)
      Checkpoint c = load_checkpoint(last_path);
      load_params(net, c, last_path);
      for (auto& [name, tensor] : opt.state()) {
        const NamedTensor* t = c.find("optim/" + name);
        if (!t || t->shape != tensor->shape)
          throw UsageError(fmt::format("{}: optimizer state '{}' missing or of another shape (was the "
                                       "optimizer changed?)", last_path, name));
        be->upload(*tensor, t->data.data());
      }
      opt.set_steps(c.meta_int("step", last_path));
      start_epoch = c.meta_int("epoch", last_path);
      start_batch = c.meta_int("batch", last_path);
      // The position inside an epoch is counted in batches of the size it was saved with.
      if (start_batch > 0 && c.meta_int("batch_size", last_path) != t_.batch_size)
        throw UsageError(fmt::format("{}: saved in the middle of an epoch at batch size {}; resume it with "
                                     "the same train.batch_size (now {})",
                                     last_path, c.meta_int("batch_size", last_path), t_.batch_size));
      if (start_batch > 0 && c.meta_int("train_samples", last_path) != train.count)
        throw UsageError(fmt::format("{}: saved in the middle of an epoch over {} training images; resume it "
                                     "with the same data (now {}: was data.train_limit changed?)",
                                     last_path, c.meta_int("train_samples", last_path), train.count));
      if (start_batch > 0) {
        const NamedTensor* m = c.find("metrics/train");
        if (!m || m->data.size() != kMetricSlots)
          throw UsageError(fmt::format("{}: saved in the middle of an epoch but has no valid metrics/train record",
                                       last_path));
        resumed_sums = m->data;
      }
      if (start_epoch < t_.epochs)
        out_line(fmt::format("resuming {} at epoch {}, batch {} (step {})", last_path, start_epoch + 1,
                             start_batch, opt.steps()));
    } else if (!req_.resume) {
      initialize_params(*be, net.params(), cfg_.init, static_cast<uint64_t>(t_.seed));
      // A fresh run replaces whatever an earlier run left in the folder.
      if (root()) {
        std::filesystem::remove(req_.out_dir + "/metrics.jsonl");
        std::filesystem::remove(last_path);
        for (const auto& e : std::filesystem::directory_iterator(ckpt_dir))
          if (e.path().extension() == ".ckpt") std::filesystem::remove(e.path());
      }
    }
    // ---- data parallelism: every rank starts from rank 0's parameters and position ----
    if (coll_.size() > 1) {
      for (Param* p : net.params()) coll_.broadcast(*be, p->value);
      for (auto& [name, tensor] : opt.state()) coll_.broadcast(*be, *tensor);
      std::vector<int64_t> pos{opt.steps(), start_epoch, start_batch};
      coll_.broadcast(pos);
      opt.set_steps(pos[0]);
      start_epoch = pos[1];
      start_batch = pos[2];
      if (!root()) resumed_sums.assign(kMetricSlots, 0.0f);  // rank 0 alone carries the saved sums
    }
    if (start_epoch >= t_.epochs) {
      out_line(fmt::format("{} already holds {} trained epochs; nothing to do (raise --epochs to go on)",
                           req_.out_dir, start_epoch));
      return kExitOk;
    }
    if (root()) write_file_atomic(req_.out_dir + "/config.yaml", cfg_.resolved_yaml);
    if (root()) jsonl_.open(req_.out_dir + "/metrics.jsonl", std::ios::app);
    if (root() && !jsonl_) throw RuntimeError(fmt::format("{}/metrics.jsonl: cannot open for writing", req_.out_dir));

    train_samples_ = train.count;
    DeviceData dtrain = upload(*be, train), dtest = upload(*be, test);
    set_order(*be, dtest, epoch_order(test.count, /*shuffle=*/false, 0, 0));  // validation in file order

    Tensor x = be->empty(batched(t_.batch_size / coll_.size(), net.input_shape()));
    Tensor labels = be->empty(Shape{t_.batch_size / coll_.size()});
    Tensor sums = be->zeros(Shape{kMetricSlots});
    Tensor val_sums = be->zeros(Shape{kMetricSlots});

    const int64_t nb = num_batches(train.count, t_.batch_size);
    for (int64_t epoch = start_epoch; epoch < t_.epochs; ++epoch) {
      const float lr = static_cast<float>(learning_rate_at(t_, epoch));
      // The epoch's time includes its shuffle, as a PyTorch epoch includes its randperm.
      auto t0 = std::chrono::steady_clock::now();
      set_order(*be, dtrain, epoch_order(train.count, cfg_.data.shuffle, static_cast<uint64_t>(t_.seed), epoch));
      int64_t b0 = 0;
      if (epoch == start_epoch && start_batch > 0) {
        be->upload(sums, resumed_sums.data());
        b0 = start_batch;
      } else {
        be->fill(sums, 0.0f);
      }
      Progress bar(fmt::format("Epoch[{}]", epoch + 1), nb);
      auto tlog = t0;
      int64_t samples = 0, samples_at_log = 0;
      for (int64_t b = b0; b < nb; ++b) {
        BatchRange r = batch_range(train.count, t_.batch_size, b);
        BatchRange mine = rank_slice(r, coll_.rank(), coll_.size());  // data parallelism
        Tensor xv = x.view(batched(mine.n, net.input_shape())), lv = labels.view(Shape{mine.n});
        Pass pass;
        pass.train = true;
        pass.seed = static_cast<uint64_t>(t_.seed);
        pass.counter = static_cast<uint64_t>(opt.steps());
        pass.labels = &lv;
        pass.metrics = &sums;
        pass.row0 = mine.first - r.first;
        pass.global_rows = r.n;
        pass.global_max_rows = t_.batch_size;
        if (mine.n > 0) {
          be->gather_batch(dtrain.images, dtrain.labels, dtrain.sample_size, dtrain.order, mine.first, mine.n, xv, lv);
          net.forward(xv, pass);
          net.backward();
        } else {
          be->fill(net.grad_arena(), 0.0f);  // a last batch smaller than the rank count
        }
        coll_.allreduce_sum(*be, net.grad_arena());  // data parallelism: sum of the ranks' gradients
        opt.step(lr);
        samples += r.n;
        if (root()) bar.update(b + 1);
        if (t_.log_interval > 0 && (b + 1) % t_.log_interval == 0 && b + 1 < nb) {
          Sums s = reduce_metrics(*be, sums);
          check_finite(s, epoch, b + 1);
          auto now = std::chrono::steady_clock::now();
          double speed = (samples - samples_at_log) / std::chrono::duration<double>(now - tlog).count();
          tlog = now;
          samples_at_log = samples;
          out_line(fmt::format("Epoch[{}] Batch[{}/{}]\tSpeed: {:.0f} samples/sec\taccuracy={:.4f}\tloss={:.4f}",
                               epoch + 1, b + 1, nb, speed, s.accuracy(), s.mean_loss()));
          jsonl(fmt::format("{{\"type\":\"batch\",\"epoch\":{},\"batch\":{},\"images_per_s\":{:.1f},"
                            "\"train_accuracy\":{:.6f},\"loss\":{:.6f}}}",
                            epoch + 1, b + 1, speed, s.accuracy(), s.mean_loss()));
        }
        if (coll_.size() > 1) g_interrupted = static_cast<int>(coll_.allreduce_max(g_interrupted));  // all stop together
        if (g_interrupted) {
          if (coll_.size() > 1) {  // the checkpoint holds the sums of every rank
            Sums g = reduce_metrics(*be, sums);
            const float v[kMetricSlots] = {static_cast<float>(g.loss), static_cast<float>(g.correct),
                                           static_cast<float>(g.count)};
            be->upload(sums, v);
          }
          save(net, opt, epoch, b + 1, &sums, {last_path});
          out_line(fmt::format("interrupted: checkpoint written to {} (epoch {}, batch {}); continue with --resume",
                               last_path, epoch + 1, b + 1));
          return interrupted_exit_code();
        }
      }
      Sums s = reduce_metrics(*be, sums);  // also waits for the device
      double train_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      check_finite(s, epoch, nb);

      auto v0 = std::chrono::steady_clock::now();
      be->fill(val_sums, 0.0f);
      for (int64_t b = 0; b < num_batches(test.count, t_.batch_size); ++b) {
        BatchRange r = rank_slice(batch_range(test.count, t_.batch_size, b), coll_.rank(), coll_.size());
        if (r.n == 0) continue;
        Tensor xv = x.view(batched(r.n, net.input_shape())), lv = labels.view(Shape{r.n});
        be->gather_batch(dtest.images, dtest.labels, dtest.sample_size, dtest.order, r.first, r.n, xv, lv);
        Pass pass;
        pass.labels = &lv;
        pass.metrics = &val_sums;
        net.forward(xv, pass);
      }
      Sums v = reduce_metrics(*be, val_sums);
      double val_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - v0).count();
      double speed = samples / train_time;
      out_line(fmt::format("Epoch[{}] Train-accuracy={:.4f} Train-loss={:.4f} Validation-accuracy={:.4f} "
                           "Validation-loss={:.4f} Time={:.2f}s ({:.0f} samples/sec) lr={:g}",
                           epoch + 1, s.accuracy(), s.mean_loss(), v.accuracy(), v.mean_loss(), train_time,
                           speed, lr));
      jsonl(fmt::format("{{\"type\":\"epoch\",\"epoch\":{},\"time_s\":{:.4f},\"images_per_s\":{:.1f},"
                        "\"train_accuracy\":{:.6f},\"loss\":{:.6f},\"val_accuracy\":{:.6f},\"val_loss\":{:.6f},"
                        "\"val_time_s\":{:.4f},\"lr\":{:g}}}",
                        epoch + 1, train_time, speed, s.accuracy(), s.mean_loss(), v.accuracy(), v.mean_loss(),
                        val_time, lr));
      // Data parallelism: the ranks must still hold the same parameters (exit 3 if not).
      if (coll_.size() > 1 && !coll_.same_on_all(param_checksum(net)))
        throw RuntimeError(fmt::format("the {} ranks hold different parameters after epoch {}: stopping "
                                       "(the ranks must run the same binary, config and data)",
                                       coll_.size(), epoch + 1));
      std::string epoch_path = fmt::format("{}/epoch-{:03d}.ckpt", ckpt_dir, epoch + 1);
      save(net, opt, epoch + 1, 0, nullptr, {epoch_path, last_path});
      if (coll_.size() > 1) g_interrupted = static_cast<int>(coll_.allreduce_max(g_interrupted));  // all stop together
      if (g_interrupted) {
        out_line(fmt::format("interrupted: checkpoint written to {} (end of epoch {}); continue with --resume",
                             last_path, epoch + 1));
        return interrupted_exit_code();
      }
    }
    out_line(fmt::format("done: {} epoch{}, model in {}", t_.epochs, t_.epochs == 1 ? "" : "s", last_path));
    return kExitOk;
  }

 private:
  void check_finite(const Sums& s, int64_t epoch, int64_t batch) {
    if (!std::isfinite(s.loss))
      throw RuntimeError(fmt::format("loss became {} in epoch {} by batch {}: the training diverged "
                                     "(try a lower train.learning_rate)",
                                     std::isnan(s.loss) ? "NaN" : "infinite", epoch + 1, batch));
  }

  // ---- data parallelism: rank 0 alone prints and writes; metric sums over all ranks ----
  bool root() const { return coll_.is_root(); }
  // Shadows mnistctl::out_line inside the trainer, so every training line is rank 0's.
  void out_line(const std::string& line) const {
    if (root()) mnistctl::out_line(line);
  }
  Sums reduce_metrics(Backend& be, const Tensor& m) {
    Sums s = read_metrics(be, m);
    if (coll_.size() == 1) return s;
    std::vector<double> v{s.loss, s.correct, s.count};
    coll_.allreduce_sum(v);
    return Sums{v[0], v[1], v[2]};
  }
  // ---- end data parallelism ----

  void jsonl(const std::string& line) {
    if (!root()) return;
    jsonl_ << line << '\n';
    jsonl_.flush();
    if (!jsonl_) throw RuntimeError(fmt::format("{}/metrics.jsonl: write failed (disk full?)", req_.out_dir));
  }

  // Downloads and serialises once, then writes the same bytes to each path.
  void save(Network& net, Optimizer& opt, int64_t epoch, int64_t batch, const Tensor* sums,
            const std::vector<std::string>& paths) {
    if (!root()) return;  // data parallelism: rank 0 writes the checkpoints
    Backend& be = net.backend();
    Checkpoint c;
    c.config_yaml = cfg_.resolved_yaml;
    c.meta["format"] = "mnistctl checkpoint";
    c.meta["epoch"] = std::to_string(epoch);
    c.meta["batch"] = std::to_string(batch);
    c.meta["step"] = std::to_string(opt.steps());
    c.meta["seed"] = std::to_string(t_.seed);
    c.meta["batch_size"] = std::to_string(t_.batch_size);
    c.meta["train_samples"] = std::to_string(train_samples_);
    c.meta["backend"] = be.name();
    auto grab = [&](const std::string& name, const Tensor& t) {
      NamedTensor nt{name, t.shape, std::vector<float>(static_cast<size_t>(t.numel()))};
      be.download(t, nt.data.data());
      c.tensors.push_back(std::move(nt));
    };
    for (Param* p : net.params()) grab("param/" + p->name, p->value);
    for (auto& [name, t] : opt.state()) grab("optim/" + name, *t);
    if (sums) grab("metrics/train", *sums);
    const std::string bytes = serialize_checkpoint(c);
    for (const auto& path : paths) write_file_atomic(path, bytes);
  }

  const TrainRequest& req_;
  int64_t train_samples_ = 0;
  const Config& cfg_;
  const TrainSpec& t_;
  std::ofstream jsonl_;
  Collective single_;  // the single process, when the request names no collective
  Collective& coll_;
};

}  // namespace

int train_network(const TrainRequest& req) { return Trainer(req).run(); }

void check_trainable(const Config& cfg, const Network& net) {
  if (!net.has_loss())
    throw UsageError(fmt::format("{}: network.layers: the last layer must be softmax_output to train", cfg.source));
  const DatasetInfo& info = find_dataset(cfg.data.dataset);
  const Shape image{1, info.rows, info.cols};
  if (net.input_shape().numel() != image.numel())
    throw UsageError(fmt::format("{}: network.input is {} but {} images are {}", cfg.source,
                                 net.input_shape().str(), cfg.data.dataset, image.str()));
  if (net.num_classes() != info.classes)
    throw UsageError(fmt::format("{}: the last layers give {} outputs but {} has {} classes", cfg.source,
                                 net.num_classes(), cfg.data.dataset, info.classes));
  net.check_fits(cfg.train.batch_size, physical_memory_bytes(), cfg.source);
}

}  // namespace mnistctl
