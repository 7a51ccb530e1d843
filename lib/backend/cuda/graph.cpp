// Step graphs on the GPU (Backend::capture / StepGraph::replay, train.cuda_graphs).
//
// A training step at batch 100 is some fifty small launches, so the GPU waits on the host's
// launch rate. capture() records the step once with stream capture into a CUDA graph;
// replay() then launches the whole step with one cudaGraphLaunch.
//
// How the changing scalars reach a replay: while capturing, the ops that take a per-step
// scalar (gather_batch, dropout_forward_step, sgd_update, adam_update) launch a variant
// kernel that reads it from one DeviceStepSlot in device memory (step_slot.h), after
// checking that the by-value argument is the StepScalars field it stands for (if not, the
// capture is abandoned: a scalar that changes and was missed would otherwise be replayed
// frozen). replay() writes the new scalars into a pinned host ring slot, queues its copy
// into the device slot and then the graph, both on the backend's one stream, so the copy
// lands after the previous replay has read the slot and before this one reads it. Each ring
// slot has an event recorded after its copy: the host waits on it before overwriting that
// slot (the copy from pinned memory is asynchronous), which also bounds how far the host
// runs ahead of the GPU to the ring's length.
//
// Capture mode: cudaStreamCaptureModeThreadLocal. Any call this thread makes that is not
// legal in a capture (a synchronisation, a host-blocking copy) fails instead of being
// silently run or recorded, which makes the capture fail and the caller stay eager; other
// threads (none use CUDA here today, but libraries may) are not affected, which
// cudaStreamCaptureModeGlobal would do. Relaxed would let such calls through unnoticed.
// The backend refuses its own unsafe ops (allocation, upload, download, synchronize) while
// capturing with a clear reason rather than relying on the CUDA error.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

namespace mnistctl::cuda {

// The device slot the captured kernels read and the pinned ring each replay writes through.
struct GraphSlots {
  static constexpr int kRing = 64;
  std::shared_ptr<DeviceContext> ctx;
  std::shared_ptr<void> device;  // one DeviceStepSlot
  DeviceStepSlot* host = nullptr;  // kRing slots, pinned
  cudaEvent_t done[kRing] = {};
  int next = 0;

  GraphSlots(std::shared_ptr<DeviceContext> c, std::shared_ptr<void> dev) : ctx(std::move(c)), device(std::move(dev)) {
    const char* op = "capture";
    try {
      void* p = nullptr;
      check_cuda(cudaHostAlloc(&p, sizeof(DeviceStepSlot) * kRing, cudaHostAllocDefault), op, "cudaHostAlloc");
      host = static_cast<DeviceStepSlot*>(p);
      for (auto& e : done) check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), op, "cudaEventCreate");
    } catch (...) {
      release();
      throw;
    }
  }
  ~GraphSlots() { release(); }
  GraphSlots(const GraphSlots&) = delete;
  GraphSlots& operator=(const GraphSlots&) = delete;

  // Queues `v` into the device slot on the stream (after everything queued before).
  void write(const DeviceStepSlot& v) {
    const char* op = "replay";
    const int i = next;
    next = (next + 1) % kRing;
    check_cuda(cudaEventSynchronize(done[i]), op, "cudaEventSynchronize");  // its last copy has run
    host[i] = v;
    check_cuda(cudaMemcpyAsync(device.get(), &host[i], sizeof v, cudaMemcpyHostToDevice, ctx->stream), op,
               "cudaMemcpyAsync");
    check_cuda(cudaEventRecord(done[i], ctx->stream), op, "cudaEventRecord");
  }

 private:
  void release() {  // errors ignored: the runtime may be unloading
    if (ctx && ctx->stream) cudaStreamSynchronize(ctx->stream);  // no copy still reads the ring
    for (auto& e : done)
      if (e) cudaEventDestroy(e), e = nullptr;
    if (host) cudaFreeHost(host), host = nullptr;
  }
};

namespace {

class CudaStepGraph final : public StepGraph {
 public:
  // `keep`: the backend's scratch blocks the captured kernels read and write (the cuDNN
  // workspace, the ones vector, the softmax row stats). A later eager call of another shape
  // (the smaller last batch) may grow them, which frees the old block: the graph holds its
  // own reference, so the addresses baked into it stay valid for its life.
  CudaStepGraph(std::shared_ptr<GraphSlots> slots, cudaGraphExec_t exec, bool adam, float beta1, float beta2,
                int64_t max_first, std::vector<std::shared_ptr<void>> keep)
      : slots_(std::move(slots)), exec_(exec), adam_(adam), beta1_(beta1), beta2_(beta2), max_first_(max_first),
        keep_(std::move(keep)) {}
  ~CudaStepGraph() override {
    // An executable graph still in flight is freed once it completes (CUDA's documented rule).
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  CudaStepGraph(const CudaStepGraph&) = delete;
  CudaStepGraph& operator=(const CudaStepGraph&) = delete;

  void replay(const StepScalars& s) override {
    // gather_batch's own bounds check, which the replayed kernel cannot make.
    require(s.first >= 0 && s.first <= max_first_, "replay",
            "batch start " + std::to_string(s.first) + " lies outside the order list the step was captured with");
    DeviceStepSlot v;
    v.first = s.first;
    v.step = s.step;
    v.lr = s.lr;
    if (adam_) {  // exactly CudaBackend::adam_update's arithmetic
      require(s.adam_step >= 1, "replay", "Adam's step counts from 1, got " + std::to_string(s.adam_step));
      v.bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1_), static_cast<double>(s.adam_step)));
      v.bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2_), static_cast<double>(s.adam_step)));
    }
    slots_->write(v);
    check_cuda(cudaGraphLaunch(exec_, slots_->ctx->stream), "replay", "cudaGraphLaunch");
  }

 private:
  std::shared_ptr<GraphSlots> slots_;
  cudaGraphExec_t exec_ = nullptr;
  bool adam_ = false;
  float beta1_ = 0.0f, beta2_ = 0.0f;
  int64_t max_first_ = INT64_MAX;
  std::vector<std::shared_ptr<void>> keep_;
};

}  // namespace

const DeviceStepSlot* CudaBackend::captured_slot(bool value_matches, const char* what) {
  if (!value_matches)
    throw RuntimeError(std::string(what) + " differs from the value the step was captured with: "
                       "it would not change on replay");
  return static_cast<const DeviceStepSlot*>(slots_->device.get());
}

void CudaBackend::refuse_in_capture(const char* op) const {
  if (cap_.on) throw RuntimeError(std::string(op) + " cannot be part of a captured step");
}

std::unique_ptr<StepGraph> CudaBackend::capture(const StepScalars& at_capture, const std::function<void()>& step,
                                                std::string* why) {
  auto fail = [&](const std::string& reason) {
    if (why) *why = reason;
    return std::unique_ptr<StepGraph>();
  };
  if (cap_.on) return fail("a capture is already under way");
  try {
    if (!slots_) slots_ = std::make_shared<GraphSlots>(ctx_, device_alloc(sizeof(DeviceStepSlot), "capture"));
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  cudaStream_t stream = ctx_->stream;
  cudaGetLastError();  // start from a clean error state
  cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fail(std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(e));
  }
  cap_ = CaptureState{};
  cap_.on = true;
  cap_.at = at_capture;
  std::string problem;
  try {
    step();
  } catch (const std::exception& ex) {
    problem = ex.what();
  } catch (...) {
    problem = "an unknown exception";
  }
  const CaptureState seen = cap_;
  cap_ = CaptureState{};
  // Always end the capture, also after a failure: the stream is usable again afterwards.
  cudaGraph_t graph = nullptr;
  e = cudaStreamEndCapture(stream, &graph);
  if (problem.empty() && e != cudaSuccess) problem = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(e);
  cudaGraphExec_t exec = nullptr;
  if (problem.empty()) {
    e = cudaGraphInstantiate(&exec, graph, 0);
    if (e != cudaSuccess) {
      problem = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(e);
      exec = nullptr;
    }
  }
  if (graph) cudaGraphDestroy(graph);
  if (problem.empty()) {
    e = cudaGraphUpload(exec, stream);  // the first replay then costs what the others do
    if (e != cudaSuccess) problem = std::string("cudaGraphUpload: ") + cudaGetErrorString(e);
  }
  cudaGetLastError();  // capture errors are not sticky; leave none behind for check_launch
  if (!problem.empty()) {
    if (exec) cudaGraphExecDestroy(exec);
    return fail(problem);
  }
  return std::make_unique<CudaStepGraph>(slots_, exec, seen.have_betas, seen.beta1, seen.beta2, seen.max_first,
                                         std::vector<std::shared_ptr<void>>{ws_, ones_, row_stats_});
}

}  // namespace mnistctl::cuda
