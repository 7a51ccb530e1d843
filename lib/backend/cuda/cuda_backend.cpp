// CudaBackend: device setup, memory, the data path, the fully-connected layers on cuBLAS,
// and the ops that are kernels of our own. The cuDNN ops (convolution, pooling, the
// standard activations) are in cudnn_ops.cpp; the design is described in cuda_backend.h.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/data_kernels.h"
#include "backend/cuda/elementwise_kernels.h"
#include "backend/cuda/optim_kernels.h"
#include "backend/cuda/softmax_kernels.h"
#include "backend/op_checks.h"  // the argument checks every backend shares
#include "core/error.h"

namespace mnistctl::cuda {
// ---- device context -----------------------------------------------------------------

DeviceContext::DeviceContext(int dev, bool allow_tf32) : device(dev) {
  const char* op = "gpu init";
  try {
    check_cuda(cudaSetDevice(dev), op, "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), op, "cudaStreamCreate");
    // Keep freed blocks in the stream-ordered pool instead of returning them at every
    // synchronisation: tensors of the same sizes are freed and made again each batch.
    cudaMemPool_t pool = nullptr;
    check_cuda(cudaDeviceGetDefaultMemPool(&pool, dev), op, "cudaDeviceGetDefaultMemPool");
    uint64_t keep_all = UINT64_MAX;
    check_cuda(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all), op,
               "cudaMemPoolSetAttribute");
    check_cudnn(cudnnCreate(&cudnn), op, "cudnnCreate");
    check_cudnn(cudnnSetStream(cudnn, stream), op, "cudnnSetStream");
    check_cublas(cublasCreate(&cublas), op, "cublasCreate");
    check_cublas(cublasSetStream(cublas, stream), op, "cublasSetStream");
    // cuBLAS's own workspace, set once: without one, cuBLAS takes it from a pool per call,
    // and inside a CUDA graph capture that puts allocation nodes into the graph and may pick
    // other kernels than the eager step did (the graph must equal the eager step bit for bit).
    // NVIDIA's recommended size: 32 MiB on Hopper and later, 4 MiB before. Set after
    // cublasSetStream, which resets it.
    int major = 0;
    check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), op, "cudaDeviceGetAttribute");
    cublas_workspace_bytes = major >= 9 ? (size_t{32} << 20) : (size_t{4} << 20);
    check_cuda(cudaMalloc(&cublas_workspace, cublas_workspace_bytes), op, "cudaMalloc (cuBLAS workspace)");
    check_cublas(cublasSetWorkspace(cublas, cublas_workspace, cublas_workspace_bytes), op, "cublasSetWorkspace");
    // CUBLAS_DEFAULT_MATH is strict FP32 for sgemm; TF32 only when asked for.
    check_cublas(cublasSetMathMode(cublas, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                 op, "cublasSetMathMode");
  } catch (...) {
    release();
    throw;
  }
}

DeviceContext::~DeviceContext() { release(); }

void DeviceContext::release() {
  if (stream) cudaStreamSynchronize(stream);
  if (cublas) cublasDestroy(cublas);
  if (cublas_workspace) cudaFree(cublas_workspace);
  if (cudnn) cudnnDestroy(cudnn);
  if (stream) cudaStreamDestroy(stream);
  cublas = nullptr;
  cublas_workspace = nullptr;
  cudnn = nullptr;
  stream = nullptr;
}

// ---- backend ------------------------------------------------------------------------

CudaBackend::CudaBackend(int device, const BackendOptions& opts)
    : ctx_(std::make_shared<DeviceContext>(device, opts.allow_tf32)), opts_(opts) {
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, device), "gpu init", "cudaGetDeviceProperties");
  name_ = "gpu:" + std::to_string(device) + " (" + prop.name + ")";
  conv_math_ = opts.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  flat_ = std::make_unique<TensorDesc>();
  rows_ = std::make_unique<TensorDesc>();
  const cudnnActivationMode_t modes[3] = {CUDNN_ACTIVATION_RELU, CUDNN_ACTIVATION_TANH,
                                          CUDNN_ACTIVATION_SIGMOID};
  for (int i = 0; i < 3; ++i) {
    act_[i] = std::make_unique<ActivationDesc>();
    check_cudnn(cudnnSetActivationDescriptor(act_[i]->get(), modes[i], CUDNN_PROPAGATE_NAN, 0.0),
                "gpu init", "cudnnSetActivationDescriptor");
  }
}

CudaBackend::~CudaBackend() {
  if (ctx_ && ctx_->stream) cudaStreamSynchronize(ctx_->stream);
}

// ---- data parallelism (NCCL) -----------------------------------------------------------

size_t CudaBackend::comm_id_bytes() const { return NcclComm::id_bytes(); }

void CudaBackend::comm_make_id(void* id) {
  check_cuda(cudaSetDevice(ctx_->device), "comm_make_id", "cudaSetDevice");
  NcclComm::make_id(id);
}

void CudaBackend::comm_init(const void* id, int rank, int size) {
  check_cuda(cudaSetDevice(ctx_->device), "comm_init", "cudaSetDevice");
  nccl_ = std::make_unique<NcclComm>(id, rank, size);
}

void CudaBackend::comm_allreduce_sum(Tensor& t) {
  require(nccl_ != nullptr, "comm_allreduce_sum", "comm_init was not called");
  nccl_->allreduce_sum(t.data, static_cast<size_t>(t.numel()), ctx_->stream);
}

void CudaBackend::synchronize() {
  refuse_in_capture("synchronize");
  check_cuda(cudaStreamSynchronize(ctx_->stream), "synchronize", "cudaStreamSynchronize");
}

// ---- memory -------------------------------------------------------------------------

std::shared_ptr<void> CudaBackend::device_alloc(size_t bytes, const char* op) {
  if (bytes == 0) return nullptr;
  refuse_in_capture(op);  // a graph must not own memory the backend hands out
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, bytes, ctx_->stream);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it: an allocation failure leaves the device usable
    throw RuntimeError(std::string(op) + ": cannot allocate " + std::to_string(bytes) +
                       " bytes on " + name_ + ": " + cudaGetErrorString(e));
  }
  std::shared_ptr<DeviceContext> ctx = ctx_;  // keeps the stream alive while memory is
  return std::shared_ptr<void>(p, [ctx](void* q) { cudaFreeAsync(q, ctx->stream); });
}

void* CudaBackend::scratch(std::shared_ptr<void>& mem, size_t& have, size_t bytes, const char* op) {
  if (bytes > have) {
    mem = device_alloc(bytes, op);  // the old block goes back to the pool, stream-ordered
    have = bytes;
  }
  return mem.get();
}

Tensor CudaBackend::empty(const Shape& shape) {
  int64_t n = shape.numel();
  require(n >= 0 && static_cast<uint64_t>(n) <= SIZE_MAX / sizeof(float), "empty",
          "invalid shape " + shape.str());
  Tensor t;
  t.shape = shape;
  t.storage = device_alloc(static_cast<size_t>(n) * sizeof(float), "empty");
  t.data = static_cast<float*>(t.storage.get());
  return t;
}

Buffer CudaBackend::alloc_bytes(size_t bytes) {
  Buffer b;
  b.storage = device_alloc(bytes, "alloc_bytes");
  b.data = b.storage.get();
  b.bytes = bytes;
  return b;
}

void CudaBackend::fill(Tensor& t, float value) { launch_fill(t.data, t.numel(), value, ctx_->stream); }

void CudaBackend::upload(Tensor& dst, const float* host) {
  refuse_in_capture("upload");
  if (dst.numel() == 0) return;
  // From pageable memory this returns once the data is staged: `host` may be freed after.
  check_cuda(cudaMemcpyAsync(dst.data, host, dst.numel() * sizeof(float), cudaMemcpyHostToDevice,
                             ctx_->stream),
             "upload", "cudaMemcpyAsync");
}

void CudaBackend::download(const Tensor& src, float* host) {
  refuse_in_capture("download");
  if (src.numel() == 0) return;
  check_cuda(cudaMemcpyAsync(host, src.data, src.numel() * sizeof(float), cudaMemcpyDeviceToHost,
                             ctx_->stream),
             "download", "cudaMemcpyAsync");
  check_cuda(cudaStreamSynchronize(ctx_->stream), "download", "cudaStreamSynchronize");
}

void CudaBackend::upload_bytes(Buffer& dst, const void* host, size_t bytes) {
  refuse_in_capture("upload_bytes");
  require(bytes <= dst.bytes, "upload_bytes",
          std::to_string(bytes) + " bytes into a buffer of " + std::to_string(dst.bytes));
  if (bytes == 0) return;
  check_cuda(cudaMemcpyAsync(dst.data, host, bytes, cudaMemcpyHostToDevice, ctx_->stream),
             "upload_bytes", "cudaMemcpyAsync");
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  opcheck::numel("copy", "dst", dst, src.numel());
  if (src.numel() == 0 || src.data == dst.data) return;
  check_cuda(cudaMemcpyAsync(dst.data, src.data, src.numel() * sizeof(float),
                             cudaMemcpyDeviceToDevice, ctx_->stream),
             "copy", "cudaMemcpyAsync");
}

// ---- data path ----------------------------------------------------------------------

void CudaBackend::gather_batch(const Buffer& images, const Buffer& labels_u8, int64_t sample_size,
                               const Buffer& order, int64_t first, int64_t n, Tensor& x,
                               Tensor& labels) {
  const char* op = "gather_batch";
  require(sample_size > 0, op, "sample_size must be positive");
  require(first >= 0 && n >= 0 && static_cast<size_t>(first + n) * sizeof(int32_t) <= order.bytes, op,
          "samples [" + std::to_string(first) + ", " + std::to_string(first + n) +
              ") are outside the order list of " + std::to_string(order.bytes / sizeof(int32_t)));
  require(x.numel() >= n * sample_size, op, "x of shape " + x.shape.str() + " is too small");
  require(labels.numel() >= n, op, "labels of shape " + labels.shape.str() + " is too small");
  int64_t num_samples = static_cast<int64_t>(images.bytes) / sample_size;
  if (static_cast<int64_t>(labels_u8.bytes) < num_samples) num_samples = static_cast<int64_t>(labels_u8.bytes);
  if (cap_.on) {  // a captured step: `first` comes from each replay's scalars
    const DeviceStepSlot* slot = captured_slot(first == cap_.at.first, "gather_batch's first");
    cap_.max_first = std::min(cap_.max_first, static_cast<int64_t>(order.bytes / sizeof(int32_t)) - n);
    launch_gather_batch_slot(static_cast<const uint8_t*>(images.data), static_cast<const uint8_t*>(labels_u8.data),
                             sample_size, num_samples, static_cast<const int32_t*>(order.data), slot, n, x.data,
                             labels.data, ctx_->stream);
    return;
  }
  launch_gather_batch(static_cast<const uint8_t*>(images.data), static_cast<const uint8_t*>(labels_u8.data),
                      sample_size, num_samples, static_cast<const int32_t*>(order.data), first, n,
                      x.data, labels.data, ctx_->stream);
}

// ---- fully connected on cuBLAS --------------------------------------------------------
// cuBLAS is column-major: a row-major (r, c) matrix is its column-major transpose with
// leading dimension c. So with x (n,in), W (out,in), y (n,out) all row-major:
//   y^T  (out x n)  = W x^T      -> gemm(T, N, out, n, in,  W ld in, x ld in,   y ld out)
//   dx^T (in x n)   = W^T dy^T   -> gemm(N, N, in, n, out,  W ld in, dy ld out, dx ld in)
//   dW^T (in x out) = x^T dy     -> gemm(N, T, in, out, n,  x ld in, dy ld out, dW ld in)
//   db   (out)      = dy^T 1     -> gemv(N, out, n, dy ld out, ones)

void CudaBackend::fc_forward(const FcDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                             Tensor& y) {
  const char* op = "fc_forward";
  opcheck::fc_forward(d, x, w, b, y);
  float one = 1.0f, beta = 0.0f;
  if (b) {
    launch_bias_rows(b->data, d.n, d.out, y.data, ctx_->stream);
    beta = 1.0f;
  }
  check_cublas(cublasSgemm(ctx_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, to_int(d.out, op),
                           to_int(d.n, op), to_int(d.in, op), &one, w.data, to_int(d.in, op),
                           x.data, to_int(d.in, op), &beta, y.data, to_int(d.out, op)),
               op, "cublasSgemm");
}

void CudaBackend::fc_backward_data(const FcDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) {
  const char* op = "fc_backward_data";
  opcheck::fc_backward_data(d, dy, w, dx);
  float one = 1.0f, zero = 0.0f;
  check_cublas(cublasSgemm(ctx_->cublas, CUBLAS_OP_N, CUBLAS_OP_N, to_int(d.in, op),
                           to_int(d.n, op), to_int(d.out, op), &one, w.data, to_int(d.in, op),
                           dy.data, to_int(d.out, op), &zero, dx.data, to_int(d.in, op)),
               op, "cublasSgemm");
}

void CudaBackend::fc_backward_weights(const FcDesc& d, const Tensor& x, const Tensor& dy,
                                      Tensor& dw, Tensor* db) {
  const char* op = "fc_backward_weights";
  opcheck::fc_backward_weights(d, x, dy, dw, db);
  float one = 1.0f, zero = 0.0f;
  check_cublas(cublasSgemm(ctx_->cublas, CUBLAS_OP_N, CUBLAS_OP_T, to_int(d.in, op),
                           to_int(d.out, op), to_int(d.n, op), &one, x.data, to_int(d.in, op),
                           dy.data, to_int(d.out, op), &zero, dw.data, to_int(d.in, op)),
               op, "cublasSgemm");
  if (db) {
    size_t need = static_cast<size_t>(d.n) * sizeof(float);
    if (need > ones_bytes_) {
      float* ones = static_cast<float*>(scratch(ones_, ones_bytes_, need, op));
      launch_fill(ones, d.n, 1.0f, ctx_->stream);
    }
    check_cublas(cublasSgemv(ctx_->cublas, CUBLAS_OP_N, to_int(d.out, op), to_int(d.n, op), &one,
                             dy.data, to_int(d.out, op), static_cast<const float*>(ones_.get()), 1,
                             &zero, db->data, 1),
                 op, "cublasSgemv");
  }
}

// ---- own kernels ----------------------------------------------------------------------

void CudaBackend::dropout_forward(float p, uint64_t seed, uint64_t counter, const Tensor& x,
                                  Tensor& y, Tensor& mask) {
  const char* op = "dropout_forward";
  opcheck::numel(op, "y", y, x.numel());
  opcheck::numel(op, "mask", mask, x.numel());
  // p >= 1 drops everything (no division by zero), as the reference.
  float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  // A fixed counter inside a captured step would repeat one mask on every replay.
  if (cap_.on)
    throw RuntimeError("dropout_forward: a counter without its step cannot be captured (dropout_forward_step)");
  launch_dropout_forward(p, keep_scale, seed, counter, x.data, y.data, mask.data, x.numel(),
                         ctx_->stream);
}

void CudaBackend::dropout_forward_step(float p, uint64_t seed, uint64_t step, uint64_t step_range,
                                       uint64_t offset, const Tensor& x, Tensor& y, Tensor& mask) {
  if (!cap_.on) return dropout_forward(p, seed, step * step_range + offset, x, y, mask);  // the eager path
  const char* op = "dropout_forward";
  opcheck::numel(op, "y", y, x.numel());
  opcheck::numel(op, "mask", mask, x.numel());
  float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const DeviceStepSlot* slot = captured_slot(step == cap_.at.step, "dropout's step");
  launch_dropout_forward_slot(p, keep_scale, seed, slot, step_range, offset, x.data, y.data, mask.data, x.numel(),
                              ctx_->stream);
}

void CudaBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
  opcheck::numel("mul", "b", b, a.numel());
  opcheck::numel("mul", "out", out, a.numel());
  launch_mul(a.data, b.data, out.data, a.numel(), ctx_->stream);
}

void CudaBackend::softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                                       Tensor* metrics) {
  const char* op = "softmax_xent_forward";
  const opcheck::SoftmaxRows r = opcheck::softmax_xent_forward(logits, labels, probs, metrics);
  const int64_t n = r.n, c = r.k;
  softmax_rows(logits, probs, n, c, op);  // cuDNN
  if (!r.labels) return;  // prediction only
  float* stats = static_cast<float*>(scratch(row_stats_, row_stats_bytes_, 2 * n * sizeof(float), op));
  launch_xent_stats(logits.data, probs.data, labels.data, n, c, stats, metrics ? metrics->data : nullptr,
                    ctx_->stream);
}

void CudaBackend::softmax_xent_backward(const Tensor& probs, const Tensor& labels, float scale,
                                        Tensor& dlogits) {
  const opcheck::Rows r = opcheck::softmax_xent_backward(probs, labels, dlogits);
  launch_softmax_xent_backward(probs.data, labels.data, r.n, r.k, scale, dlogits.data, ctx_->stream);
}

void CudaBackend::sgd_update(Tensor& w, const Tensor& g, Tensor* mom, float lr, float momentum,
                             float wd) {
  opcheck::sgd_update(w, g, mom, momentum);
  float* m = momentum != 0.0f ? mom->data : nullptr;
  if (cap_.on) {
    const DeviceStepSlot* slot = captured_slot(lr == cap_.at.lr, "sgd_update's lr");
    launch_sgd_update_slot(w.data, g.data, m, w.numel(), slot, momentum, wd, ctx_->stream);
    return;
  }
  launch_sgd_update(w.data, g.data, m, w.numel(), lr, momentum, wd, ctx_->stream);
}

void CudaBackend::adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, float lr,
                              float beta1, float beta2, float eps, float wd, int64_t step) {
  opcheck::adam_update(w, g, m, v, step);
  if (cap_.on) {  // lr and the bias corrections (from step) come from each replay's scalars
    captured_slot(lr == cap_.at.lr, "adam_update's lr");
    const DeviceStepSlot* slot = captured_slot(step == cap_.at.adam_step, "adam_update's step");
    if (!cap_.have_betas) cap_.have_betas = true, cap_.beta1 = beta1, cap_.beta2 = beta2;
    if (beta1 != cap_.beta1 || beta2 != cap_.beta2)
      throw RuntimeError("adam_update: parameters with different betas cannot share one captured step");
    launch_adam_update_slot(w.data, g.data, m.data, v.data, w.numel(), slot, beta1, beta2, eps, wd, ctx_->stream);
    return;
  }
  float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
  float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step)));
  launch_adam_update(w.data, g.data, m.data, v.data, w.numel(), lr, beta1, beta2, eps, wd, bc1, bc2,
                     ctx_->stream);
}

}  // namespace mnistctl::cuda
