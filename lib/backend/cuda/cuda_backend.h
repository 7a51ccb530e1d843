// The GPU backend (--ctx gpu[:N]): cuDNN for convolution, pooling and the standard
// activations, cuBLAS for the fully-connected layers, and small kernels of our own for the
// rest (data_kernels, elementwise_kernels, softmax_kernels, optim_kernels).
//
// Why it is shaped this way:
// - One stream for everything, set on the cuDNN and cuBLAS handles: work is ordered without
//   events, and nothing blocks the host except download() and synchronize().
// - Memory comes from CUDA's stream-ordered allocator (cudaMallocAsync / cudaFreeAsync on
//   that stream) with the pool's release threshold raised, so freeing and re-allocating
//   a batch's tensors is a pool hit, not a device-wide cudaFree sync. Every allocation
//   holds a shared_ptr to the DeviceContext (stream + handles), so tensors may outlive the
//   Backend object safely.
// - cuDNN algorithm choices and workspace sizes are made once per shape (ConvPlan keyed by
//   the ConvDesc, PoolPlan by the PoolDesc) and one workspace is grown to the largest need,
//   never allocated per call. Deterministic mode picks by cuDNN's heuristic among
//   CUDNN_DETERMINISTIC algorithms (timing-based cudnnFind could pick a different algorithm
//   on a rerun, hence different bits); otherwise cudnnFind measures and the fastest wins.
// - Strict FP32 unless BackendOptions.allow_tf32: CUDNN_FMA_MATH and CUBLAS_DEFAULT_MATH.
// - Step graphs (Backend::capture, train.cuda_graphs): stream capture of a whole step into a
//   CUDA graph, replayed with new per-step scalars from a device slot (graph.cpp,
//   step_slot.h). Outside a capture every op takes exactly its eager path.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/nccl_comm.h"
#include "backend/cuda/step_slot.h"

namespace mnistctl::cuda {

// The stream and library handles of one device. Shared by the backend and by every
// allocation it hands out (their deleters free on this stream).
struct DeviceContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  void* cublas_workspace = nullptr;  // cuBLAS's workspace for the handle's life (see the constructor)
  size_t cublas_workspace_bytes = 0;
  explicit DeviceContext(int device, bool allow_tf32);
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

 private:
  void release();  // frees what was made; errors ignored (the runtime may be unloading)
};

// Owns one cuDNN descriptor (create in the constructor, destroy in the destructor).
template <typename T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class CudnnDesc {
 public:
  CudnnDesc() { check_cudnn(Create(&d_), "cuda backend", "create a cuDNN descriptor"); }
  ~CudnnDesc() {
    if (d_) Destroy(d_);
  }
  CudnnDesc(const CudnnDesc&) = delete;
  CudnnDesc& operator=(const CudnnDesc&) = delete;
  T get() const { return d_; }

 private:
  T d_ = nullptr;
};
using TensorDesc = CudnnDesc<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc = CudnnDesc<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDesc = CudnnDesc<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                                  cudnnDestroyConvolutionDescriptor>;
using PoolingDesc = CudnnDesc<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor, cudnnDestroyPoolingDescriptor>;
using ActivationDesc = CudnnDesc<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor,
                                 cudnnDestroyActivationDescriptor>;

// Everything cuDNN needs for one convolution shape. Each direction's algorithm is chosen
// on its first use (an eval-only run never searches backward algorithms).
struct ConvPlan {
  TensorDesc x, y, bias;
  FilterDesc w;
  ConvolutionDesc conv;
  bool have_fwd = false, have_bwd_data = false, have_bwd_filter = false;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  cudnnMathType_t fwd_math{}, bwd_data_math{}, bwd_filter_math{};
  size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;
};

struct GraphSlots;  // graph.cpp: the device step slot and the pinned ring that feeds it

struct PoolPlan {
  TensorDesc x, y;
  PoolingDesc pool;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, const BackendOptions& opts);
  ~CudaBackend() override;

  std::string name() const override { return name_; }
  void synchronize() override;

  Tensor empty(const Shape& shape) override;
  Buffer alloc_bytes(size_t bytes) override;
  void fill(Tensor& t, float value) override;
  void upload(Tensor& dst, const float* host) override;
  void download(const Tensor& src, float* host) override;
  void upload_bytes(Buffer& dst, const void* host, size_t bytes) override;
  void copy(const Tensor& src, Tensor& dst) override;

  void gather_batch(const Buffer& images, const Buffer& labels_u8, int64_t sample_size,
                    const Buffer& order, int64_t first, int64_t n, Tensor& x,
                    Tensor& labels) override;

  void fc_forward(const FcDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                  Tensor& y) override;
  void fc_backward_data(const FcDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) override;
  void fc_backward_weights(const FcDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                           Tensor* db) override;

  void conv_forward(const ConvDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                    Tensor& y) override;
  void conv_backward_data(const ConvDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) override;
  void conv_backward_weights(const ConvDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                             Tensor* db) override;

  Buffer pool_workspace(const PoolDesc& d) override;
  void pool_forward(const PoolDesc& d, const Tensor& x, Tensor& y, Buffer& ws) override;
  void pool_backward(const PoolDesc& d, const Tensor& x, const Tensor& y, const Tensor& dy,
                     const Buffer& ws, Tensor& dx) override;

  void act_forward(ActType a, const Tensor& x, Tensor& y) override;
  void act_backward(ActType a, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor& dx) override;
  void dropout_forward(float p, uint64_t seed, uint64_t counter, const Tensor& x, Tensor& y,
                       Tensor& mask) override;
  void dropout_forward_step(float p, uint64_t seed, uint64_t step, uint64_t step_range, uint64_t offset,
                            const Tensor& x, Tensor& y, Tensor& mask) override;
  void mul(const Tensor& a, const Tensor& b, Tensor& out) override;

  void softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                            Tensor* metrics) override;
  void softmax_xent_backward(const Tensor& probs, const Tensor& labels, float scale,
                             Tensor& dlogits) override;

  void sgd_update(Tensor& w, const Tensor& g, Tensor* mom, float lr, float momentum,
                  float wd) override;
  void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, float lr, float beta1,
                   float beta2, float eps, float wd, int64_t step) override;

  // Data parallelism: NCCL (nccl_comm.h), on this backend's stream.
  size_t comm_id_bytes() const override;
  void comm_make_id(void* id) override;
  void comm_init(const void* id, int rank, int size) override;
  void comm_allreduce_sum(Tensor& t) override;

  // Step graphs (graph.cpp).
  bool supports_graphs() const override { return true; }
  std::unique_ptr<StepGraph> capture(const StepScalars& at_capture, const std::function<void()>& step,
                                     std::string* why) override;

 private:
  // While a step is being captured (capture()): `value_matches` says whether an op's by-value
  // scalar equals the StepScalars field it stands for (`what`); if not, the capture is
  // abandoned (RuntimeError), else the op's kernel reads the field from the returned slot.
  const DeviceStepSlot* captured_slot(bool value_matches, const char* what);
  // Refuses, during a capture, an op that cannot be part of a graph (host copies, syncs).
  void refuse_in_capture(const char* op) const;
  struct CaptureState {
    bool on = false;
    StepScalars at;
    bool have_betas = false;  // Adam's beta1/beta2, the same for every parameter of a step
    float beta1 = 0.0f, beta2 = 0.0f;
    int64_t max_first = INT64_MAX;  // the largest gather `first` that stays inside the order list
  };

  // Device memory of at least `bytes`, stream-ordered; shared by every copy of the handle.
  std::shared_ptr<void> device_alloc(size_t bytes, const char* op);
  // Grows a scratch allocation (never shrinks); returns its pointer.
  void* scratch(std::shared_ptr<void>& mem, size_t& have, size_t bytes, const char* op);
  void* workspace(size_t bytes, const char* op) { return scratch(ws_, ws_bytes_, bytes, op); }

  ConvPlan& conv_plan(const ConvDesc& d);
  void choose_fwd(ConvPlan& p);
  void choose_bwd_data(ConvPlan& p);
  void choose_bwd_filter(ConvPlan& p);
  PoolPlan& pool_plan(const PoolDesc& d);
  // A 1x1x1xN descriptor for elementwise cuDNN calls.
  cudnnTensorDescriptor_t flat_desc(int64_t n, const char* op);
  // probs = softmax(logits) over each row of an (n, c) matrix, through cuDNN.
  void softmax_rows(const Tensor& logits, Tensor& probs, int64_t n, int64_t c, const char* op);

  std::shared_ptr<DeviceContext> ctx_;
  BackendOptions opts_;
  std::string name_;
  cudnnMathType_t conv_math_;

  std::map<std::array<int64_t, 11>, std::unique_ptr<ConvPlan>> conv_plans_;
  std::map<std::array<int64_t, 11>, std::unique_ptr<PoolPlan>> pool_plans_;
  std::unique_ptr<TensorDesc> flat_;
  std::unique_ptr<TensorDesc> rows_;  // n x c x 1 x 1, for the softmax
  std::unique_ptr<ActivationDesc> act_[3];  // relu, tanh, sigmoid

  std::shared_ptr<void> ws_;        // the cuDNN workspace, grown to the largest plan's need
  size_t ws_bytes_ = 0;
  std::shared_ptr<void> ones_;      // n ones, for the fully-connected bias gradient (gemv)
  size_t ones_bytes_ = 0;
  std::shared_ptr<void> row_stats_; // per-row loss and hit of softmax_xent_forward
  size_t row_stats_bytes_ = 0;
  CaptureState cap_;
  std::shared_ptr<GraphSlots> slots_;  // made on the first capture; shared with its graphs
  std::unique_ptr<NcclComm> nccl_;  // last: destroyed first
};

}  // namespace mnistctl::cuda
