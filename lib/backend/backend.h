// The Backend interface: every numeric operation a layer, the trainer or the data path
// needs, on memory the backend owns. One implementation per context:
//   ref  - plain C++ loops (backend/ref), the reference every other backend is tested against;
//   cpu  - oneDNN (backend/cpu);
//   gpu  - cuDNN + cuBLAS + a few CUDA kernels (backend/cuda), a lazily loaded shared library.
//
// Calls are stateless from the caller's side: each takes a descriptor with every shape it
// needs. Backends cache what is expensive to make (oneDNN primitives, cuDNN algorithm
// choices and workspaces) keyed by that descriptor, so a shape's setup is paid once.
// Layouts are plain and row-major: activations NCHW, convolution weights KCRS (out, in,
// kh, kw), fully-connected weights (out, in) as MXNet stores them, biases (out). The one
// exception is opt-in: a backend whose accepts_nhwc() is true also takes channels-last
// activations (Tensor::layout) in its convolutions and poolings, and the network plan hands
// it those where its preferred_layout says so (see below).
// Backward functions overwrite their outputs (they never accumulate).
// Errors are thrown as mnistctl::Error (core/error.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/tensor.h"
#include "core/error.h"

namespace mnistctl {

enum class ActType { relu, tanh, sigmoid, softrelu };
enum class PoolType { max, avg };

struct FcDesc {
  int64_t n = 0, in = 0, out = 0;
  bool bias = true;
};

struct ConvDesc {
  int64_t n = 0, c = 0, h = 0, w = 0;      // input
  int64_t k = 0, kh = 0, kw = 0;           // filters
  int64_t sh = 1, sw = 1, ph = 0, pw = 0;  // stride, zero padding
  bool bias = true;
  int64_t oh() const { return (h + 2 * ph - kh) / sh + 1; }
  int64_t ow() const { return (w + 2 * pw - kw) / sw + 1; }
};

struct PoolDesc {
  PoolType type = PoolType::max;
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t kh = 2, kw = 2, sh = 2, sw = 2, ph = 0, pw = 0;
  // Output extent: floor ("valid") convention, as MXNet's default pooling_convention.
  int64_t oh() const { return (h + 2 * ph - kh) / sh + 1; }
  int64_t ow() const { return (w + 2 * pw - kw) / sw + 1; }
};
// Average pooling divides by the full window (padding included), as MXNet's
// count_include_pad=true default.

// Running sums for the training metrics, kept in backend memory so the GPU never syncs
// per batch: a Tensor of kMetricSlots floats.
enum MetricSlot { kMetricLossSum = 0, kMetricCorrect = 1, kMetricCount = 2, kMetricSlots = 3 };

// ---- step graphs (CUDA graphs; see Backend::capture) -------------------------------------
// The scalars that change from one replay of a captured step to the next. Everything else a
// step uses (pointers, shapes, hyperparameters) is fixed for a given batch size.
struct StepScalars {
  int64_t first = 0;   // gather_batch's `first`: where the batch starts in the order buffer
  uint64_t step = 0;   // dropout_forward_step's `step`: optimizer steps before this one
  float lr = 0.0f;     // sgd_update's and adam_update's `lr`
  int64_t adam_step = 0;  // adam_update's `step` (counts from 1)
};

// A captured step, replayed with new scalars. Replays are queued like any backend call (no
// host sync); a graph must not outlive the backend that captured it.
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  virtual void replay(const StepScalars& s) = 0;
};

// What Backend::measure_peak found: the rate, and what ran (e.g. "AVX-512 FMA loop, 2 threads").
struct ArithmeticPeak {
  double gflops = 0;
  std::string probe;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "ref", "cpu (oneDNN 2.6.3, 2 threads)", "gpu:0 (NVIDIA H100 80GB HBM3)".
  virtual std::string name() const = 0;
  // Waits until all queued work is done (a no-op on the CPU).
  virtual void synchronize() {}

  // ---- layouts (tensor.h) --------------------------------------------------------
  // Whether conv_* and pool_* take rank-4 tensors in either layout, each argument's own
  // (Tensor::layout; pooling: not an nhwc output from an NCHW input). Elementwise ops never
  // look at the layout. Backends that answer false (the default) refuse nhwc tensors.
  virtual bool accepts_nhwc() const { return false; }
  // The activation layout `d`'s convolution runs in natively: the network plan gives it that
  // layout where the tensor's producer can write it, so no reorder happens in between.
  virtual Layout preferred_layout(const ConvDesc& /*d*/) const { return Layout::nchw; }

  // ---- memory -------------------------------------------------------------------
  virtual Tensor empty(const Shape& shape) = 0;  // uninitialised
  virtual Buffer alloc_bytes(size_t bytes) = 0;
  Tensor zeros(const Shape& shape) {
    Tensor t = empty(shape);
    fill(t, 0.0f);
    return t;
  }
  virtual void fill(Tensor& t, float value) = 0;
  virtual void upload(Tensor& dst, const float* host) = 0;          // dst.numel() floats
  virtual void download(const Tensor& src, float* host) = 0;        // src.numel() floats
  virtual void upload_bytes(Buffer& dst, const void* host, size_t bytes) = 0;
  // Takes host bytes over as a Buffer (the dataset, uploaded once). Device backends copy;
  // host backends keep the vector itself, so a dataset is never held twice.
  virtual Buffer adopt_bytes(std::vector<uint8_t>&& bytes) {
    Buffer b = alloc_bytes(bytes.size());
    upload_bytes(b, bytes.data(), bytes.size());
    std::vector<uint8_t>().swap(bytes);
    return b;
  }
  virtual void copy(const Tensor& src, Tensor& dst) = 0;            // same numel

  // ---- data path ----------------------------------------------------------------
  // Builds a batch from the uint8 dataset already in backend memory:
  //   x[i, :] = images[order[first + i], :] / 255      (sample_size bytes per image)
  //   labels[i] = labels_u8[order[first + i]]          (as float)
  // `order` holds int32 sample indices (the epoch's shuffle), uploaded once per epoch.
  virtual void gather_batch(const Buffer& images, const Buffer& labels_u8, int64_t sample_size,
                            const Buffer& order, int64_t first, int64_t n, Tensor& x,
                            Tensor& labels) = 0;

  // ---- fully connected: y = x W^T + b;  x (n, in), W (out, in), y (n, out) --------
  virtual void fc_forward(const FcDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                          Tensor& y) = 0;
  virtual void fc_backward_data(const FcDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) = 0;
  virtual void fc_backward_weights(const FcDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                                   Tensor* db) = 0;

  // ---- convolution (cross-correlation, as every framework) -----------------------
  virtual void conv_forward(const ConvDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                            Tensor& y) = 0;
  virtual void conv_backward_data(const ConvDesc& d, const Tensor& dy, const Tensor& w,
                                  Tensor& dx) = 0;
  virtual void conv_backward_weights(const ConvDesc& d, const Tensor& x, const Tensor& dy,
                                     Tensor& dw, Tensor* db) = 0;

  // ---- pooling ------------------------------------------------------------------
  // What the forward pass keeps for the backward one (max indices on oneDNN; may be empty).
  virtual Buffer pool_workspace(const PoolDesc& d) = 0;
  virtual void pool_forward(const PoolDesc& d, const Tensor& x, Tensor& y, Buffer& ws) = 0;
  virtual void pool_backward(const PoolDesc& d, const Tensor& x, const Tensor& y,
                             const Tensor& dy, const Buffer& ws, Tensor& dx) = 0;

  // ---- elementwise --------------------------------------------------------------
  // relu: max(x,0); tanh; sigmoid: 1/(1+e^-x); softrelu: log(1+e^x) (MXNet's name).
  virtual void act_forward(ActType a, const Tensor& x, Tensor& y) = 0;
  // dx = dy * f'(x); implementations may use y (= f(x)) where cheaper. dx may alias dy.
  virtual void act_backward(ActType a, const Tensor& x, const Tensor& y, const Tensor& dy,
                            Tensor& dx) = 0;
  // Inverted dropout: mask[i] = (hash_uniform(seed, counter + i) >= p) / (1 - p), y = x * mask.
  virtual void dropout_forward(float p, uint64_t seed, uint64_t counter, const Tensor& x,
                               Tensor& y, Tensor& mask) = 0;
  // The same with counter = step * step_range + offset, spelled out so that a captured step
  // (capture below) can take `step` from the replay's StepScalars. Layers call this one.
  virtual void dropout_forward_step(float p, uint64_t seed, uint64_t step, uint64_t step_range,
                                    uint64_t offset, const Tensor& x, Tensor& y, Tensor& mask) {
    dropout_forward(p, seed, step * step_range + offset, x, y, mask);
  }
  virtual void mul(const Tensor& a, const Tensor& b, Tensor& out) = 0;  // out = a * b

  // ---- softmax with cross-entropy (fused, as MXNet's SoftmaxOutput) ---------------
  // probs = softmax(logits) per row. If metrics is given, adds to it: the summed
  // -log(probs[label]) (clamped at 1e-12), the number of rows whose argmax (first max)
  // equals the label, and the number of rows. labels.data == nullptr means no labels
  // (prediction only): then metrics is null too.
  virtual void softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                                    Tensor* metrics) = 0;
  // dlogits = (probs - onehot(labels)) * scale   (scale = 1/n for a mean loss).
  virtual void softmax_xent_backward(const Tensor& probs, const Tensor& labels, float scale,
                                     Tensor& dlogits) = 0;

  // ---- optimizers (in place) ----------------------------------------------------
  // g' = g + wd*w;  mom = momentum*mom - lr*g';  w += mom.  (mom unused when momentum == 0)
  virtual void sgd_update(Tensor& w, const Tensor& g, Tensor* mom, float lr, float momentum,
                          float wd) = 0;
  // Adam (Kingma & Ba) with L2 weight decay added to the gradient; step counts from 1.
  virtual void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, float lr, float beta1,
                           float beta2, float eps, float wd, int64_t step) = 0;

  // ---- data parallelism (called by lib/dist only; a single process never calls them) ----
  // True where tensors are host memory that MPI may read and write in place (ref, cpu):
  // lib/dist then reduces them itself. Otherwise it uses the device collective below.
  virtual bool host_memory() const { return false; }
  // The device collective (CUDA: NCCL, loaded on first use). comm_id_bytes() == 0: none.
  virtual size_t comm_id_bytes() const { return 0; }
  // Rank 0: writes a fresh communicator id of comm_id_bytes() bytes (ncclGetUniqueId).
  virtual void comm_make_id(void* /*id*/) { throw RuntimeError(name() + ": no device collective"); }
  // Every rank, with rank 0's id (lib/dist broadcasts it over MPI): joins the communicator
  // of `size` ranks as `rank`; returns once all have joined (ncclCommInitRank).
  virtual void comm_init(const void* /*id*/, int /*rank*/, int /*size*/) {
    throw RuntimeError(name() + ": no device collective");
  }
  // t = the sum of t over all ranks, in place, queued on the backend's stream after the
  // work before it (ncclAllReduce): the optimizer step queued next sees the sum.
  virtual void comm_allreduce_sum(Tensor& /*t*/) { throw RuntimeError(name() + ": no device collective"); }

  // ---- measurement (mnistctl bench) -----------------------------------------------------
  // The device's arithmetic peak in the backend's precision, measured by a probe that does
  // nothing but multiply-adds on registers (cpu: fma_peak.h); nullopt where the backend has
  // no probe. Runs for a short while (calibrated runs of the loop).
  virtual std::optional<ArithmeticPeak> measure_peak() { return std::nullopt; }

  // ---- step graphs (the GPU's CUDA graphs; train.cuda_graphs) ---------------------------
  // Whether capture() can ever succeed on this backend (false: the default, ref and cpu).
  virtual bool supports_graphs() const { return false; }
  // Records `step` (calls on this backend only) without running it, as a graph that
  // replay(s) runs with the scalars of s in place of those of `at_capture`. Inside the
  // step, gather_batch's first, dropout_forward_step's step, sgd/adam's lr and adam's step
  // must equal at_capture's fields (they are read from the replay's scalars); any other
  // scalar is baked in. The step must allocate nothing, copy nothing to the host and not
  // synchronise: run one step of the same shapes eagerly first. Returns nullptr, with the
  // reason in *why, when unsupported or when the capture failed (nothing ran then either).
  virtual std::unique_ptr<StepGraph> capture(const StepScalars& /*at_capture*/,
                                             const std::function<void()>& /*step*/, std::string* why) {
    if (why) *why = name() + " does not support step graphs";
    return nullptr;
  }
};

// The arithmetic of convolutions and fully-connected layers. bf16: their inputs
// (activations, weights, output gradients) are rounded to bfloat16 at the op boundary, the
// products accumulate in FP32 and the results are written in FP32. Every tensor the caller
// sees stays FP32: parameters (the master weights), gradients, the loss, softmax and the
// optimizer are FP32 whatever the precision.
enum class Precision { fp32, bf16 };

struct BackendOptions {
  int threads = 0;             // CPU backends: 0 means all cores available to the process
  bool deterministic = false;  // GPU: only deterministic cuDNN algorithms (max-pool included)
  bool allow_tf32 = false;     // GPU: allow TF32 tensor-core math (off: strict FP32)
  Precision precision = Precision::fp32;
};

// Throws UsageError (one line, exit 2) where `ctx` cannot run `precision` natively: bf16
// needs AVX-512 BF16 or AMX on the CPU (oneDNN would otherwise emulate it several times
// slower), and is not available on ref or (in this version) the GPU. Cheap: call it at start-up,
// before loading data. `field` names what asked for it in the message (e.g. "train.precision").
void check_precision(const std::string& ctx, Precision precision, const std::string& field);

// Makes the backend for a context: "ref", "cpu", "gpu" or "gpu:N".
// The GPU backend is loaded from libmnistctl_cuda.so on first use (backend/loader.cpp).
// Throws UsageError for an unknown context, or a GPU asked for where none is usable.
std::unique_ptr<Backend> make_backend(const std::string& ctx, const BackendOptions& opts = {});

// Contexts this build knows, for help text: {"cpu", "gpu[:N]"} or {"cpu"}.
std::vector<std::string> known_contexts();

// Checks the spelling of a context only (no module is loaded): "" when it is "ref", "cpu",
// "gpu" or "gpu:N", else one line saying what was expected, with a "did you mean"
// ("cuda" -> "gpu"). make_backend and the command line's --ctx check both use it.
std::string context_problem(const std::string& ctx);

// `mnistctl --version`: core/build_info.h plus what this room knows: the oneDNN library
// loaded, whether the CUDA module was built, and whether it is present where the loader looks.
std::string build_report();

}  // namespace mnistctl
