// CudaBackend's cuDNN ops: convolution (forward, backward data, backward filter + bias),
// pooling and the relu / tanh / sigmoid activations (softrelu is a kernel of our own).
//
// cuDNN 9 still ships the legacy descriptor API (cudnn_cnn.h, cudnn_ops.h) that this uses:
// for fixed NCHW FP32 shapes it is the shortest path to cuDNN's tuned kernels. A ConvPlan
// holds one shape's descriptors and, per direction, the chosen algorithm, its math type and
// its workspace size, so the search runs once per shape and each call is just the call.
//
// Algorithm choice:
//   default        cudnnFind*Algorithm times every algorithm once; the fastest usable wins.
//   deterministic  cudnnGet*Algorithm_v7 (heuristics, no timing, so the same choice on
//                  every run) restricted to CUDNN_DETERMINISTIC algorithms; max pooling uses
//                  CUDNN_POOLING_MAX_DETERMINISTIC. Same seed => bit-identical weights.
// "Usable" also means a workspace of at most kMaxWorkspace. Cost of deterministic mode,
// measured on an H200 (scripts/gpu-check.sh step 4: LeNet, batch 100, second epoch of
// 10000 images): 0.058-0.084 s against 0.053 s for the default, so within noise to ~10%
// on these small shapes; the default mode's first batch of a shape pays for cudnnFind.
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/elementwise_kernels.h"
#include "backend/op_checks.h"  // the argument checks every backend shares
#include "core/error.h"

namespace mnistctl::cuda {
namespace {

constexpr size_t kMaxWorkspace = size_t(512) << 20;

// The first usable result: cudnnFind sorts by time, the _v7 heuristics by expected speed.
// None usable: RuntimeError naming the op and the direction (what).
template <typename Perf>
const Perf& pick(const Perf* perf, int count, bool deterministic, const char* op, const char* what) {
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kMaxWorkspace) continue;
    if (deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    return perf[i];
  }
  throw RuntimeError(std::string(op) + ": cuDNN offers no usable " +
                     (deterministic ? "deterministic " : "") + what + " algorithm for this shape");
}

// A 4-d NCHW FP32 tensor descriptor (cuDNN takes int extents).
void set_nchw(cudnnTensorDescriptor_t t, int64_t n, int64_t c, int64_t h, int64_t w, const char* op) {
  check_cudnn(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(n, op), to_int(c, op),
                                         to_int(h, op), to_int(w, op)),
              op, "cudnnSetTensor4dDescriptor");
}

// The output extent cuDNN computes must be the one the descriptor (and the caller's y) has.
void require_out(int oh, int ow, int64_t want_h, int64_t want_w, const char* op) {
  require(oh == want_h && ow == want_w, op,
          "cuDNN computes a " + std::to_string(oh) + "x" + std::to_string(ow) + " output, expected " +
              std::to_string(want_h) + "x" + std::to_string(want_w));
}

const float kOne = 1.0f, kZero = 0.0f;

}  // namespace

// ---- plans --------------------------------------------------------------------------

ConvPlan& CudaBackend::conv_plan(const ConvDesc& d) {
  std::array<int64_t, 11> key{d.n, d.c, d.h, d.w, d.k, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw};
  auto it = conv_plans_.find(key);
  if (it != conv_plans_.end()) return *it->second;

  const char* op = "convolution";
  auto p = std::make_unique<ConvPlan>();
  set_nchw(p->x.get(), d.n, d.c, d.h, d.w, op);
  check_cudnn(cudnnSetFilter4dDescriptor(p->w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(d.k, op),
                                         to_int(d.c, op), to_int(d.kh, op), to_int(d.kw, op)),
              op, "cudnnSetFilter4dDescriptor");
  check_cudnn(cudnnSetConvolution2dDescriptor(p->conv.get(), to_int(d.ph, op), to_int(d.pw, op),
                                              to_int(d.sh, op), to_int(d.sw, op), 1, 1,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
              op, "cudnnSetConvolution2dDescriptor");
  check_cudnn(cudnnSetConvolutionMathType(p->conv.get(), conv_math_), op, "cudnnSetConvolutionMathType");
  int on = 0, oc = 0, oh = 0, ow = 0;
  check_cudnn(cudnnGetConvolution2dForwardOutputDim(p->conv.get(), p->x.get(), p->w.get(), &on, &oc, &oh, &ow),
              op, "cudnnGetConvolution2dForwardOutputDim");
  require_out(oh, ow, d.oh(), d.ow(), op);
  set_nchw(p->y.get(), on, oc, oh, ow, op);
  set_nchw(p->bias.get(), 1, oc, 1, 1, op);
  return *(conv_plans_[key] = std::move(p));
}

// Each choose_* runs once per shape and direction. The math type of the chosen algorithm
// is kept: with TF32 allowed cuDNN may pick a tensor-op variant; without, FMA stays.
// The three stay written out on purpose: they differ in the cuDNN functions (Find / Get_v7
// / GetWorkspaceSize per direction), in the descriptor order each takes (x,w,y / w,y,x /
// x,y,w) and in the plan fields they set; a template over three function families would
// hide exactly what one reads to check that a call is right. What is the same (picking the
// first usable algorithm, the error) is pick().
void CudaBackend::choose_fwd(ConvPlan& p) {
  const char* op = "conv_forward";
  cudnnHandle_t h = ctx_->cudnn;
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int got = 0;
  if (opts_.deterministic)
    check_cudnn(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf),
                op, "cudnnGetConvolutionForwardAlgorithm_v7");
  else
    check_cudnn(cudnnFindConvolutionForwardAlgorithm(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf),
                op, "cudnnFindConvolutionForwardAlgorithm");
  const auto& best = pick(perf, got, opts_.deterministic, op, "forward");
  p.fwd = best.algo;
  p.fwd_math = opts_.allow_tf32 ? best.mathType : CUDNN_FMA_MATH;
  check_cudnn(cudnnSetConvolutionMathType(p.conv.get(), p.fwd_math), op, "cudnnSetConvolutionMathType");
  check_cudnn(cudnnGetConvolutionForwardWorkspaceSize(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                      p.fwd, &p.fwd_ws),
              op, "cudnnGetConvolutionForwardWorkspaceSize");
  p.have_fwd = true;
}

void CudaBackend::choose_bwd_data(ConvPlan& p) {
  const char* op = "conv_backward_data";
  cudnnHandle_t h = ctx_->cudnn;
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int got = 0;
  if (opts_.deterministic)
    check_cudnn(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(),
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf),
                op, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
  else
    check_cudnn(cudnnFindConvolutionBackwardDataAlgorithm(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(),
                                                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf),
                op, "cudnnFindConvolutionBackwardDataAlgorithm");
  const auto& best = pick(perf, got, opts_.deterministic, op, "backward-data");
  p.bwd_data = best.algo;
  p.bwd_data_math = opts_.allow_tf32 ? best.mathType : CUDNN_FMA_MATH;
  check_cudnn(cudnnSetConvolutionMathType(p.conv.get(), p.bwd_data_math), op, "cudnnSetConvolutionMathType");
  check_cudnn(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(),
                                                           p.bwd_data, &p.bwd_data_ws),
              op, "cudnnGetConvolutionBackwardDataWorkspaceSize");
  p.have_bwd_data = true;
}

void CudaBackend::choose_bwd_filter(ConvPlan& p) {
  const char* op = "conv_backward_weights";
  cudnnHandle_t h = ctx_->cudnn;
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int got = 0;
  if (opts_.deterministic)
    check_cudnn(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(),
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf),
                op, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
  else
    check_cudnn(cudnnFindConvolutionBackwardFilterAlgorithm(h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(),
                                                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf),
                op, "cudnnFindConvolutionBackwardFilterAlgorithm");
  const auto& best = pick(perf, got, opts_.deterministic, op, "backward-filter");
  p.bwd_filter = best.algo;
  p.bwd_filter_math = opts_.allow_tf32 ? best.mathType : CUDNN_FMA_MATH;
  check_cudnn(cudnnSetConvolutionMathType(p.conv.get(), p.bwd_filter_math), op, "cudnnSetConvolutionMathType");
  check_cudnn(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(),
                                                             p.bwd_filter, &p.bwd_filter_ws),
              op, "cudnnGetConvolutionBackwardFilterWorkspaceSize");
  p.have_bwd_filter = true;
}

PoolPlan& CudaBackend::pool_plan(const PoolDesc& d) {
  std::array<int64_t, 11> key{static_cast<int64_t>(d.type), d.n, d.c, d.h, d.w, d.kh, d.kw,
                              d.sh, d.sw, d.ph, d.pw};
  auto it = pool_plans_.find(key);
  if (it != pool_plans_.end()) return *it->second;

  const char* op = "pooling";
  auto p = std::make_unique<PoolPlan>();
  // Average pooling divides by the whole window, padding included (MXNet's default).
  cudnnPoolingMode_t mode = d.type == PoolType::avg ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                            : opts_.deterministic   ? CUDNN_POOLING_MAX_DETERMINISTIC
                                                    : CUDNN_POOLING_MAX;
  check_cudnn(cudnnSetPooling2dDescriptor(p->pool.get(), mode, CUDNN_PROPAGATE_NAN, to_int(d.kh, op),
                                          to_int(d.kw, op), to_int(d.ph, op), to_int(d.pw, op),
                                          to_int(d.sh, op), to_int(d.sw, op)),
              op, "cudnnSetPooling2dDescriptor");
  set_nchw(p->x.get(), d.n, d.c, d.h, d.w, op);
  int on = 0, oc = 0, oh = 0, ow = 0;
  check_cudnn(cudnnGetPooling2dForwardOutputDim(p->pool.get(), p->x.get(), &on, &oc, &oh, &ow), op,
              "cudnnGetPooling2dForwardOutputDim");
  require_out(oh, ow, d.oh(), d.ow(), op);
  set_nchw(p->y.get(), on, oc, oh, ow, op);
  return *(pool_plans_[key] = std::move(p));
}

cudnnTensorDescriptor_t CudaBackend::flat_desc(int64_t n, const char* op) {
  set_nchw(flat_->get(), 1, 1, 1, n, op);
  return flat_->get();
}

// ---- softmax ------------------------------------------------------------------------

void CudaBackend::softmax_rows(const Tensor& logits, Tensor& probs, int64_t n, int64_t c, const char* op) {
  set_nchw(rows_->get(), n, c, 1, 1, op);
  // ACCURATE subtracts each row's maximum first, as the reference does.
  check_cudnn(cudnnSoftmaxForward(ctx_->cudnn, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_INSTANCE, &kOne,
                                  rows_->get(), logits.data, &kZero, rows_->get(), probs.data),
              op, "cudnnSoftmaxForward");
}

// ---- convolution --------------------------------------------------------------------

void CudaBackend::conv_forward(const ConvDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                               Tensor& y) {
  const char* op = "conv_forward";
  opcheck::conv_args(op, d, x, w, y);
  if (b) opcheck::numel(op, "b", *b, d.k);
  ConvPlan& p = conv_plan(d);
  if (!p.have_fwd) choose_fwd(p);
  void* ws = workspace(p.fwd_ws, op);
  cudnnHandle_t h = ctx_->cudnn;
  check_cudnn(cudnnSetConvolutionMathType(p.conv.get(), p.fwd_math), op, "cudnnSetConvolutionMathType");
  check_cudnn(cudnnConvolutionForward(h, &kOne, p.x.get(), x.data, p.w.get(), w.data, p.conv.get(), p.fwd,
                                      ws, p.fwd_ws, &kZero, p.y.get(), y.data),
              op, "cudnnConvolutionForward");
  if (b)
    check_cudnn(cudnnAddTensor(h, &kOne, p.bias.get(), b->data, &kOne, p.y.get(), y.data), op,
                "cudnnAddTensor");
}

void CudaBackend::conv_backward_data(const ConvDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) {
  const char* op = "conv_backward_data";
  opcheck::conv_args(op, d, dx, w, dy);
  ConvPlan& p = conv_plan(d);
  if (!p.have_bwd_data) choose_bwd_data(p);
  void* ws = workspace(p.bwd_data_ws, op);
  check_cudnn(cudnnSetConvolutionMathType(p.conv.get(), p.bwd_data_math), op, "cudnnSetConvolutionMathType");
  check_cudnn(cudnnConvolutionBackwardData(ctx_->cudnn, &kOne, p.w.get(), w.data, p.y.get(), dy.data,
                                           p.conv.get(), p.bwd_data, ws, p.bwd_data_ws, &kZero, p.x.get(),
                                           dx.data),
              op, "cudnnConvolutionBackwardData");
}

void CudaBackend::conv_backward_weights(const ConvDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                                        Tensor* db) {
  const char* op = "conv_backward_weights";
  opcheck::conv_args(op, d, x, dw, dy);
  if (db) opcheck::numel(op, "db", *db, d.k);
  ConvPlan& p = conv_plan(d);
  if (!p.have_bwd_filter) choose_bwd_filter(p);
  void* ws = workspace(p.bwd_filter_ws, op);
  cudnnHandle_t h = ctx_->cudnn;
  check_cudnn(cudnnSetConvolutionMathType(p.conv.get(), p.bwd_filter_math), op, "cudnnSetConvolutionMathType");
  check_cudnn(cudnnConvolutionBackwardFilter(h, &kOne, p.x.get(), x.data, p.y.get(), dy.data, p.conv.get(),
                                             p.bwd_filter, ws, p.bwd_filter_ws, &kZero, p.w.get(), dw.data),
              op, "cudnnConvolutionBackwardFilter");
  if (db)
    check_cudnn(cudnnConvolutionBackwardBias(h, &kOne, p.y.get(), dy.data, &kZero, p.bias.get(), db->data),
                op, "cudnnConvolutionBackwardBias");
}

// ---- pooling ------------------------------------------------------------------------

// cuDNN's pooling backward works from x, y and dy: nothing to keep between the passes.
Buffer CudaBackend::pool_workspace(const PoolDesc& d) {
  opcheck::pool("pool_workspace", d);
  return Buffer{};
}

void CudaBackend::pool_forward(const PoolDesc& d, const Tensor& x, Tensor& y, Buffer&) {
  const char* op = "pool_forward";
  opcheck::pool_args(op, d, x, y);
  PoolPlan& p = pool_plan(d);
  check_cudnn(cudnnPoolingForward(ctx_->cudnn, p.pool.get(), &kOne, p.x.get(), x.data, &kZero, p.y.get(),
                                  y.data),
              op, "cudnnPoolingForward");
}

void CudaBackend::pool_backward(const PoolDesc& d, const Tensor& x, const Tensor& y, const Tensor& dy,
                                const Buffer&, Tensor& dx) {
  const char* op = "pool_backward";
  opcheck::pool_args(op, d, x, y);
  opcheck::pool_args(op, d, dx, dy);
  PoolPlan& p = pool_plan(d);
  check_cudnn(cudnnPoolingBackward(ctx_->cudnn, p.pool.get(), &kOne, p.y.get(), y.data, p.y.get(), dy.data,
                                   p.x.get(), x.data, &kZero, p.x.get(), dx.data),
              op, "cudnnPoolingBackward");
}

// ---- activations --------------------------------------------------------------------
// relu, tanh and sigmoid through cuDNN on a flat 1x1x1xN view (they are elementwise);
// softrelu has no cuDNN mode and is a kernel (elementwise_kernels.cu).

void CudaBackend::act_forward(ActType a, const Tensor& x, Tensor& y) {
  const char* op = "act_forward";
  opcheck::numel(op, "y", y, x.numel());
  if (x.numel() == 0) return;
  if (a == ActType::softrelu) return launch_softrelu_forward(x.data, y.data, x.numel(), ctx_->stream);
  cudnnTensorDescriptor_t t = flat_desc(x.numel(), op);
  check_cudnn(cudnnActivationForward(ctx_->cudnn, act_[static_cast<int>(a)]->get(), &kOne, t, x.data, &kZero,
                                     t, y.data),
              op, "cudnnActivationForward");
}

void CudaBackend::act_backward(ActType a, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  const char* op = "act_backward";
  opcheck::numel(op, "y", y, x.numel());
  opcheck::numel(op, "dy", dy, x.numel());
  opcheck::numel(op, "dx", dx, x.numel());
  if (x.numel() == 0) return;
  if (a == ActType::softrelu)
    return launch_softrelu_backward(x.data, dy.data, dx.data, x.numel(), ctx_->stream);
  // dx may alias dy: cuDNN allows that when both use the same descriptor, as here.
  cudnnTensorDescriptor_t t = flat_desc(x.numel(), op);
  check_cudnn(cudnnActivationBackward(ctx_->cudnn, act_[static_cast<int>(a)]->get(), &kOne, t, y.data, t,
                                      dy.data, t, x.data, &kZero, t, dx.data),
              op, "cudnnActivationBackward");
}

}  // namespace mnistctl::cuda
