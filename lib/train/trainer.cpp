#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "core/shell_word.h"
#include "core/stop_signals.h"
#include "data/batch.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "nn/network.h"
#include "train/checkpoint.h"
#include "train/collective.h"
#include "train/initializer.h"
#include "train/model.h"
#include "train/optimizer.h"
#include "train/run_folder.h"
#include "train/schedule.h"
#include "train/step_graphs.h"

namespace mnistctl {
namespace {

// Ctrl-C and SIGTERM: core/stop_signals.h (handlers on an alternate stack, see there why).
int interrupted_exit_code() { return 128 + stop_signal(); }

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

std::string seconds_text(double s) { return fmt::format("{:.1f} s", s); }

// What the checkpoint meta carries across a resume besides the position: the run's own
// bookkeeping, so that times, the best model and the stopping rules continue exactly.
struct RunState {
  double train_time_s = 0;         // training time of the run so far, over every process
  double best_val_accuracy = 0;    // and its epoch (0: no epoch validated yet)
  int64_t best_epoch = 0;
  std::string es_metric;           // early stopping: the figure watched ("" before the first epoch)
  double es_best = 0;              //   its best value so far
  int64_t es_wait = 0;             //   epochs in a row without enough improvement
  double target = 0;               // stop_at_accuracy the time below was measured for
  int64_t target_epoch = 0;        // the epoch that reached it (0: not yet)
  double time_to_accuracy_s = 0;   // training time until the end of that epoch
};

class Trainer {
 public:
  explicit Trainer(const TrainRequest& req)
      : req_(req), cfg_(req.config), t_(cfg_.train), folder_(req.out_dir),
        coll_(req.collective ? *req.collective : single_) {}

  int run() {
    const auto wall0 = std::chrono::steady_clock::now();
    StopSignals signals;
    Network net(cfg_.network);
    check_trainable(cfg_, net);
    if (root()) {  // data parallelism: rank 0 alone owns the run folder
      // Refusals first, while nothing is written: a folder another train holds, then one that
      // holds a run (before loading anything). Then the lock: one writer, and a second train
      // into the folder refuses, naming this process; begin() checks the run again under it.
      if (!req_.resume) {
        RunFolder::check_not_in_use(req_.out_dir);
        check_fresh_run(req_.out_dir, req_.overwrite);
      }
      folder_.lock();
    }

    Dataset train = load_split(req_.data_root, cfg_.data.dataset, Split::train, cfg_.data.train_limit);
    Dataset test = load_split(req_.data_root, cfg_.data.dataset, Split::test, cfg_.data.test_limit);
    // The files on disk must be the dataset the catalog describes (check_trainable used that).
    if (train.sample_size() != net.input_shape().numel() || test.sample_size() != train.sample_size())
      throw UsageError(fmt::format("{}: the {} files hold {}x{} images, expected {}", req_.data_root,
                                   cfg_.data.dataset, train.rows, train.cols, net.input_shape().str()));

    auto be = coll_.make_backend(req_.ctx, req_.backend);  // data parallelism: this rank's device
    if (stop_signal()) {
      stop_line("interrupted before training started: nothing written");
      return interrupted_exit_code();
    }
    out_line(fmt::format("mnistctl train: {} on {} ({} training, {} test images), {} parameters", cfg_.name,
                         be->name(), train.count, test.count, net.param_count()));
    if (!coll_.describe().empty()) out_line(coll_.describe());
    // Settings larger than the data are capped; say so rather than silently.
    if (cfg_.data.train_limit > train.count)
      out_line(fmt::format("note: data.train_limit {} is more than the {} {} training images: all {} are used",
                           cfg_.data.train_limit, train.count, cfg_.data.dataset, train.count));
    if (t_.batch_size > train.count)
      out_line(fmt::format("note: train.batch_size {} is more than the {} training images: an epoch is one batch of {}",
                           t_.batch_size, train.count, train.count));
    net.bind(*be, t_.batch_size / coll_.size());  // this rank's share of a global batch
    Optimizer opt(t_.optimizer, *be, net.params());

    const std::string last_path = folder_.last_path();
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
      if (start_batch > (train.count + t_.batch_size - 1) / t_.batch_size)
        throw UsageError(fmt::format("{}: corrupt checkpoint: batch {} lies past the end of an epoch ({} images at "
                                     "batch size {})",
                                     last_path, start_batch, train.count, t_.batch_size));
      // The rest of the epoch must see the images the first part did not: the same dataset in
      // the same order (data.shuffle, train.seed), or some images twice and others never.
      if (start_batch > 0) {
        const Config saved = load_config_text(c.config_yaml, last_path + " (embedded config)");
        std::string changed;
        auto differs = [&](const char* key, const std::string& was, const std::string& now) {
          if (was != now) changed += fmt::format("{}{} (was {}, now {})", changed.empty() ? "" : ", ", key, was, now);
        };
        differs("data.dataset", saved.data.dataset, cfg_.data.dataset);
        differs("data.shuffle", saved.data.shuffle ? "true" : "false", cfg_.data.shuffle ? "true" : "false");
        differs("train.seed", std::to_string(saved.train.seed), std::to_string(t_.seed));
        if (!changed.empty())
          throw UsageError(fmt::format("{}: saved in the middle of an epoch, whose remaining batches depend on the "
                                       "data and its order; resume it with the same {}",
                                       last_path, changed));
      }
      if (start_batch > 0) {
        const NamedTensor* m = c.find("metrics/train");
        if (!m || m->data.size() != kMetricSlots)
          throw UsageError(fmt::format("{}: saved in the middle of an epoch but has no valid metrics/train record",
                                       last_path));
        resumed_sums = m->data;
      }
      restore_state(c, last_path);
    } else if (!req_.resume) {
      initialize_params(*be, net.params(), cfg_.init, static_cast<uint64_t>(t_.seed));
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
      out_line(fmt::format("{} already holds {} trained epoch{}; nothing to do (raise --epochs to go on)",
                           req_.out_dir, start_epoch, start_epoch == 1 ? "" : "s"));
      return kExitOk;
    }
    // A run that stopped by its own rule stays stopped unless the rule is changed (--set).
    if (start_batch == 0) {
      if (Stop stop; shared_stop(stop)) {
        out_line(fmt::format("{} stopped after epoch {}: {}; nothing to do (change the rule with --set to go on)",
                             req_.out_dir, start_epoch, stop.why));
        return kExitOk;
      }
    }
    if (req_.resume)
      out_line(fmt::format("resuming {} at epoch {}, batch {} (step {})", last_path, start_epoch + 1, start_batch,
                           opt.steps()));
    if (root()) folder_.begin(req_.resume, req_.overwrite, cfg_.resolved_yaml, start_epoch, start_batch);

    train_samples_ = train.count;
    DeviceData dtrain = upload(*be, train), dtest = upload(*be, test);
    set_order(*be, dtest, epoch_order(test.count, /*shuffle=*/false, 0, 0));  // validation in file order

    Tensor x = be->empty(batched(t_.batch_size / coll_.size(), net.input_shape()));
    Tensor labels = be->empty(Shape{t_.batch_size / coll_.size()});
    Tensor sums = be->zeros(Shape{kMetricSlots});
    Tensor val_sums = be->zeros(Shape{kMetricSlots});

    // train.cuda_graphs: full-batch steps replayed from CUDA graphs (train/step_graphs.h).
    // Under mpirun (even -np 1) the step calls the collective, which no graph may hold.
    const bool data_parallel = !coll_.describe().empty();  // "" only for the single process
    StepGraphs graphs(*be, t_.cuda_graphs, data_parallel, [this](const std::string& line) { out_line(line); });

    const int64_t nb = num_batches(train.count, t_.batch_size);
    int64_t epochs_done = start_epoch;
    double final_val_accuracy = 0;
    std::string stopped;
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
        const int64_t steps0 = opt.steps();
        auto train_step = [&] {
          opt.set_steps(steps0);  // graphs: the host may run a step twice (a failed capture), alike
          if (mine.n > 0) {
            be->gather_batch(dtrain.images, dtrain.labels, dtrain.sample_size, dtrain.order, mine.first, mine.n, xv,
                             lv);
            net.forward(xv, pass);
            net.backward();
          } else {
            be->fill(net.grad_arena(), 0.0f);  // a last batch smaller than the rank count
          }
          coll_.allreduce_sum(*be, net.grad_arena());  // data parallelism: sum of the ranks' gradients
          opt.step(lr);
        };
        graphs.run(StepGraphs::Kind::train, mine.n, r.n == t_.batch_size,
                   StepScalars{mine.first, pass.counter, lr, steps0 + 1}, train_step);
        opt.set_steps(steps0 + 1);  // a replay runs no host code
        samples += r.n;
        if (root() && bar.due(b + 1)) {  // on a terminal only: the running loss costs a sync
          Sums s = read_metrics(*be, sums);
          double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          bar.update(b + 1, fmt::format("{:.0f} samples/s loss={:.4f}", secs > 0 ? samples / secs : 0.0,
                                        s.mean_loss()));
        }
        if (t_.log_interval > 0 && (b + 1) % t_.log_interval == 0 && b + 1 < nb) {
          Sums s = reduce_metrics(*be, sums);
          check_finite(s, epoch, b + 1);
          auto now = std::chrono::steady_clock::now();
          double speed = (samples - samples_at_log) / std::chrono::duration<double>(now - tlog).count();
          tlog = now;
          samples_at_log = samples;
          out_line(fmt::format("Epoch[{}] Batch[{}/{}]\tSpeed: {:.0f} samples/sec\taccuracy={:.4f}\tloss={:.4f}",
                               epoch + 1, b + 1, nb, speed, s.accuracy(), s.mean_loss()));
          log_json(fmt::format("{{\"type\":\"batch\",\"epoch\":{},\"batch\":{},\"images_per_s\":{:.1f},"
                                       "\"train_accuracy\":{:.6f},\"loss\":{:.6f}}}",
                                       epoch + 1, b + 1, speed, s.accuracy(), s.mean_loss()));
        }
        if (share_stop_signal()) {
          if (coll_.size() > 1) {  // the checkpoint holds the sums of every rank
            Sums g = reduce_metrics(*be, sums);
            const float v[kMetricSlots] = {static_cast<float>(g.loss), static_cast<float>(g.correct),
                                           static_cast<float>(g.count)};
            be->upload(sums, v);
          }
          RunState now = state_;
          now.train_time_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          save(net, opt, now, epoch, b + 1, &sums, false);
          stop_line(fmt::format("interrupted: checkpoint written to {} (epoch {}, batch {}); continue with: {}",
                                last_path, epoch + 1, b + 1, resume_command()));
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
        auto val_step = [&] {
          be->gather_batch(dtest.images, dtest.labels, dtest.sample_size, dtest.order, r.first, r.n, xv, lv);
          Pass pass;
          pass.labels = &lv;
          pass.metrics = &val_sums;
          net.forward(xv, pass);
        };
        graphs.run(StepGraphs::Kind::validation, r.n, r.n == t_.batch_size, StepScalars{r.first, 0, 0.0f, 0},
                   val_step);
      }
      Sums v = reduce_metrics(*be, val_sums);
      double val_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - v0).count();
      double speed = samples / train_time;
      out_line(fmt::format("Epoch[{}] Train-accuracy={:.4f} Train-loss={:.4f} Validation-accuracy={:.4f} "
                           "Validation-loss={:.4f} Time={:.2f}s ({:.0f} samples/sec) lr={:g}",
                           epoch + 1, s.accuracy(), s.mean_loss(), v.accuracy(), v.mean_loss(), train_time,
                           speed, lr));
      const bool best = end_of_epoch(epoch + 1, train_time, v);
      log_epoch(EpochLog{epoch + 1, train_time, speed, s.accuracy(), s.mean_loss(), v.accuracy(), v.mean_loss(),
                         val_time, lr, state_.train_time_s});
      // Data parallelism: the ranks must still hold the same parameters (exit 3 if not).
      if (coll_.size() > 1 && !coll_.same_on_all(param_checksum(net)))
        throw RuntimeError(fmt::format("the {} ranks hold different parameters after epoch {}: stopping "
                                       "(the ranks must run the same binary, config and data)",
                                       coll_.size(), epoch + 1));
      save(net, opt, state_, epoch + 1, 0, nullptr, best);
      epochs_done = epoch + 1;
      final_val_accuracy = v.accuracy();
      const int sig = share_stop_signal();
      Stop stop;
      const bool by_rule = shared_stop(stop);
      // A stop signal after the run's last epoch (the last of --epochs, or one that met a stop
      // rule) finds nothing left to do: the run ends as complete, with its summary, rather than
      // as interrupted with a resume that has nothing to continue. Not so for a reader of
      // stdout that went away (SIGPIPE): that ends as documented, exit 141, the line on stderr.
      if (sig != 0 && (sig == SIGPIPE || (!by_rule && epoch + 1 < t_.epochs))) {
        stop_line(fmt::format("interrupted: checkpoint written to {} (end of epoch {}); continue with: {}",
                              last_path, epoch + 1, resume_command()));
        return interrupted_exit_code();
      }
      if (by_rule) {
        stopped = stop.kind;
        out_line(fmt::format("stopping after epoch {}: {}", epoch + 1, stop.why));
        break;
      }
    }
    summary(epochs_done, final_val_accuracy, stopped,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count());
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
  // The line that says how the run stopped: on stderr when stdout's reader went away
  // (SIGPIPE) or stalls (a pager left unscrolled: out_line gives the line up), where it can
  // still be read.
  void stop_line(const std::string& line) const {
    if (!root()) return;
    if (stop_signal() == SIGPIPE || !mnistctl::out_line(line)) mnistctl::log_line(line);
  }
  Sums reduce_metrics(Backend& be, const Tensor& m) {
    Sums s = read_metrics(be, m);
    if (coll_.size() == 1) return s;
    std::vector<double> v{s.loss, s.correct, s.count};
    coll_.allreduce_sum(v);
    return Sums{v[0], v[1], v[2]};
  }
  // ---- end data parallelism ----

  void log_json(const std::string& record) {
    if (root()) folder_.log_json(record);
  }
  void log_epoch(const EpochLog& r) {
    if (root()) folder_.log_epoch(r);
  }

  // The command that continues this run, as the user would type it.
  std::string resume_command() const {
    std::string cmd = "mnistctl train --out " + shell_word(req_.out_dir) + " --resume";
    if (!req_.data_root.empty()) cmd += " --data-dir " + shell_word(req_.data_root);
    if (req_.ctx != "cpu") cmd += " --ctx " + shell_word(req_.ctx);
    if (req_.backend.threads > 0) cmd += " --threads " + std::to_string(req_.backend.threads);  // bit-identical on the CPU
    return cmd;
  }

  void restore_state(const Checkpoint& c, const std::string& src) {
    RunState& st = state_;
    st.train_time_s = c.meta_double_or("train_time_s", src, 0.0);
    st.best_epoch = c.meta_int_or("best_epoch", src, 0);
    st.best_val_accuracy = c.meta_double_or("best_val_accuracy", src, 0.0);
    st.target = c.meta_double_or("target_accuracy", src, 0.0);
    st.target_epoch = c.meta_int_or("target_epoch", src, 0);
    st.time_to_accuracy_s = c.meta_double_or("time_to_accuracy_s", src, 0.0);
    if (st.target != t_.stop_at_accuracy) st.target = 0, st.target_epoch = 0, st.time_to_accuracy_s = 0;
    auto it = c.meta.find("es_metric");
    if (it != c.meta.end() && t_.early_stopping.enabled && it->second == t_.early_stopping.metric) {
      st.es_metric = it->second;
      st.es_best = c.meta_double_or("es_best", src, 0.0);
      st.es_wait = c.meta_int_or("es_wait", src, 0);
    } else if (t_.early_stopping.enabled && c.meta_int("epoch", src) > 0) {
      out_line(fmt::format("early stopping starts counting now (the run did not watch {} before)",
                           t_.early_stopping.metric));
    }
  }

  // Bookkeeping after an epoch's validation; true when it is the best epoch so far (best.ckpt).
  bool end_of_epoch(int64_t epoch, double train_time, const Sums& v) {
    RunState& st = state_;
    st.train_time_s += train_time;
    const bool best = st.best_epoch == 0 || v.accuracy() > st.best_val_accuracy;
    if (best) {
      st.best_val_accuracy = v.accuracy();
      st.best_epoch = epoch;
    }
    const EarlyStoppingSpec& es = t_.early_stopping;
    if (es.enabled) {
      const bool lower = es.metric == "val_loss";
      const double value = lower ? v.mean_loss() : v.accuracy();
      const bool improved = st.es_metric.empty() ||
                            (lower ? value < st.es_best - es.min_delta : value > st.es_best + es.min_delta);
      st.es_metric = es.metric;
      if (improved) {
        st.es_best = value;
        st.es_wait = 0;
      } else {
        ++st.es_wait;
      }
    }
    if (t_.stop_at_accuracy > 0 && st.target_epoch == 0 && v.accuracy() >= t_.stop_at_accuracy) {
      st.target = t_.stop_at_accuracy;
      st.target_epoch = epoch;
      st.time_to_accuracy_s = st.train_time_s;
    }
    return best;
  }

  // Why the run should stop now, judged by the rules of the current config: kind is
  // "stop_at_accuracy" or "early_stopping", empty when the run goes on.
  struct Stop {
    std::string kind, why;
  };
  // Data parallelism: rank 0 holds the run's bookkeeping, so its verdict (`stop`, filled on
  // rank 0 only) is the one every rank follows. True when the run stops now.
  bool shared_stop(Stop& stop) {
    if (root()) stop = stop_reason();
    return coll_.allreduce_max(stop.kind.empty() ? 0 : 1) != 0;
  }
  // Data parallelism: a Ctrl-C seen by any rank stops them all at the same batch. Returns the
  // signal the ranks agreed on: decide on it, not on stop_signal() read again later, which a
  // signal arriving in between could change on one rank only.
  int share_stop_signal() {
    if (coll_.size() == 1) return stop_signal();
    const int agreed = static_cast<int>(coll_.allreduce_max(stop_signal()));
    if (agreed != 0) set_stop_signal(agreed);  // 0: a signal that came since stays for the next agreement
    return agreed;
  }

  Stop stop_reason() const {
    const RunState& st = state_;
    if (t_.stop_at_accuracy > 0 && st.best_epoch > 0 && st.best_val_accuracy >= t_.stop_at_accuracy)
      return {"stop_at_accuracy",
              fmt::format("validation accuracy reached {:g} (train.stop_at_accuracy)", t_.stop_at_accuracy)};
    const EarlyStoppingSpec& es = t_.early_stopping;
    if (es.enabled && st.es_metric == es.metric && st.es_wait >= es.patience)
      return {"early_stopping", fmt::format("{} did not improve by more than {:g} for {} epoch{} (train.early_stopping)",
                                            es.metric, es.min_delta, st.es_wait, st.es_wait == 1 ? "" : "s")};
    return {};
  }

  // The closing line, and the same facts as the last metrics.jsonl record. `stopped` is the
  // Stop kind, empty when all epochs ran.
  void summary(int64_t epochs, double final_val, const std::string& stopped, double wall_s) {
    const RunState& st = state_;
    // After --resume the training time counts every session, the wall time this one only.
    std::string line = fmt::format(
        "done: {} epoch{}{}; validation accuracy {:.4f} (best {:.4f} at epoch {}); {} of training{}, {} {}",
        epochs, epochs == 1 ? "" : "s", stopped.empty() ? "" : " (stopped early)", final_val, st.best_val_accuracy,
        st.best_epoch, seconds_text(st.train_time_s), req_.resume ? " over all sessions" : "", seconds_text(wall_s),
        req_.resume ? "in this one" : "in all");
    std::string json = fmt::format(
        "{{\"type\":\"summary\",\"epochs\":{},\"stopped_by\":\"{}\",\"val_accuracy\":{:.6f},"
        "\"best_val_accuracy\":{:.6f},\"best_epoch\":{},\"train_time_s\":{:.4f},\"wall_time_s\":{:.4f}",
        epochs, stopped.empty() ? "epochs" : stopped, final_val, st.best_val_accuracy, st.best_epoch,
        st.train_time_s, wall_s);
    if (t_.stop_at_accuracy > 0) {
      json += fmt::format(",\"target_accuracy\":{:g}", t_.stop_at_accuracy);
      if (st.target_epoch > 0) {
        line += fmt::format("; time to accuracy {:g}: {} (epoch {})", t_.stop_at_accuracy,
                            seconds_text(st.time_to_accuracy_s), st.target_epoch);
        json += fmt::format(",\"time_to_accuracy_s\":{:.4f},\"time_to_accuracy_epoch\":{}", st.time_to_accuracy_s,
                            st.target_epoch);
      } else {
        line += fmt::format("; did not reach validation accuracy {:g}", t_.stop_at_accuracy);
      }
    }
    line += fmt::format("; model: {}, best: {}", folder_.last_path(), folder_.best_path());
    log_json(json + "}");
    out_line(line);
  }

  // Downloads and serialises once; the run folder writes the bytes where they belong.
  void save(Network& net, Optimizer& opt, const RunState& st, int64_t epoch, int64_t batch, const Tensor* sums,
            bool best) {
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
    // The run's bookkeeping; doubles with 17 digits so that a resumed run compares exactly.
    c.meta["train_time_s"] = fmt::format("{:.6f}", st.train_time_s);
    c.meta["best_epoch"] = std::to_string(st.best_epoch);
    c.meta["best_val_accuracy"] = fmt::format("{:.17g}", st.best_val_accuracy);
    if (!st.es_metric.empty()) {
      c.meta["es_metric"] = st.es_metric;
      c.meta["es_best"] = fmt::format("{:.17g}", st.es_best);
      c.meta["es_wait"] = std::to_string(st.es_wait);
    }
    if (st.target_epoch > 0) {
      c.meta["target_accuracy"] = fmt::format("{:.17g}", st.target);
      c.meta["target_epoch"] = std::to_string(st.target_epoch);
      c.meta["time_to_accuracy_s"] = fmt::format("{:.6f}", st.time_to_accuracy_s);
    }
    // A diverged run is stopped before its NaN or Inf weights replace a good checkpoint (a
    // Ctrl-C between logged batches, or the epoch's last steps, come here before any check of
    // the loss would; a loaded checkpoint with such values counts as damaged).
    auto grab = [&](const std::string& name, const Tensor& t) {
      NamedTensor nt{name, t.shape, std::vector<float>(static_cast<size_t>(t.numel()))};
      be.download(t, nt.data.data());
      for (float x : nt.data)
        if (!std::isfinite(x))
          throw RuntimeError(fmt::format("'{}' became {} by epoch {}, batch {}: the training diverged (try a lower "
                                         "train.learning_rate); the checkpoints already written are kept",
                                         name, std::isnan(x) ? "NaN" : "infinite", batch == 0 ? epoch : epoch + 1,
                                         batch == 0 ? "end" : std::to_string(batch)));
      c.tensors.push_back(std::move(nt));
    };
    for (Param* p : net.params()) grab("param/" + p->name, p->value);
    for (auto& [name, t] : opt.state()) grab("optim/" + name, *t);
    if (sums) grab("metrics/train", *sums);
    folder_.save_checkpoint(serialize_checkpoint(c), epoch, batch == 0 && sums == nullptr, best);
  }

  const TrainRequest& req_;
  int64_t train_samples_ = 0;
  const Config& cfg_;
  const TrainSpec& t_;
  RunFolder folder_;
  RunState state_;
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
