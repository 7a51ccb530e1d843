// Cross-entropy and accuracy for MXNet's SoftmaxOutput, around cuDNN's softmax (which the
// backend calls first: cudnnSoftmaxForward, ACCURATE, per instance). See softmax_kernels.h.
//
// MNIST has 10 classes, so one thread per row is the simple and fast choice: a batch of
// 100 rows is one block and each thread reads its 10 logits once from L1.
// Metrics are accumulated on the device without atomics: the row kernel writes per-row
// loss and hit, then one block sums them in a fixed tree order and adds to `metrics`.
// Float atomics would make the sums depend on thread timing; this way the logged loss of
// a deterministic run is reproducible too, and nothing is copied to the host per batch.
#include "backend/cuda/softmax_kernels.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.h"

namespace mnistctl::cuda {
namespace {

// A label outside [0, c) (a gather of a bad index gives -1) counts as a miss with the
// clamped loss and contributes no one-hot term: never an out-of-bounds read.
__device__ inline int label_index(const float* labels, int64_t i, int64_t c) {
  float l = labels[i];
  return (l >= 0.0f && l < float(c)) ? int(l) : -1;
}

__global__ void xent_rows_kernel(const float* logits, const float* probs, const float* labels, int64_t n,
                                 int64_t c, float* row_stats) {
  MNISTCTL_GRID_STRIDE(i, n) {
    // The argmax of the logits, not of the probabilities: exp can round two close logits
    // to equal probabilities, and the first maximum must be the reference's.
    const float* z = logits + i * c;
    float mx = z[0];
    int64_t arg = 0;
    for (int64_t j = 1; j < c; ++j)
      if (z[j] > mx) {
        mx = z[j];
        arg = j;
      }
    int l = label_index(labels, i, c);
    float pl = l >= 0 ? probs[i * c + l] : 0.0f;
    row_stats[2 * i] = -logf(fmaxf(pl, 1e-12f));
    row_stats[2 * i + 1] = (l >= 0 && arg == l) ? 1.0f : 0.0f;
  }
}

// One block: each thread sums a strided set of rows in order, then a tree in shared memory.
__global__ void metrics_reduce_kernel(const float* row_stats, int64_t n, float* metrics) {
  __shared__ float loss[kThreads];
  __shared__ float hits[kThreads];
  float l = 0.0f, h = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    l += row_stats[2 * i];
    h += row_stats[2 * i + 1];
  }
  loss[threadIdx.x] = l;
  hits[threadIdx.x] = h;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      loss[threadIdx.x] += loss[threadIdx.x + stride];
      hits[threadIdx.x] += hits[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    metrics[0] += loss[0];
    metrics[1] += hits[0];
    metrics[2] += float(n);
  }
}

__global__ void softmax_backward_kernel(const float* probs, const float* labels, int64_t n,
                                        int64_t c, float scale, float* dlogits) {
  int64_t total = n * c;
  MNISTCTL_GRID_STRIDE(t, total) {
    int64_t i = t / c, j = t - i * c;
    float onehot = label_index(labels, i, c) == j ? 1.0f : 0.0f;
    dlogits[t] = (probs[t] - onehot) * scale;
  }
}

}  // namespace

void launch_xent_stats(const float* logits, const float* probs, const float* labels, int64_t n,
                       int64_t c, float* row_stats, float* metrics, cudaStream_t s) {
  if (n <= 0 || c <= 0) return;
  xent_rows_kernel<<<grid_for(n), kThreads, 0, s>>>(logits, probs, labels, n, c, row_stats);
  check_launch("softmax_xent_forward");
  if (metrics) {
    metrics_reduce_kernel<<<1, kThreads, 0, s>>>(row_stats, n, metrics);
    check_launch("softmax_xent_forward (metrics)");
  }
}

void launch_softmax_xent_backward(const float* probs, const float* labels, int64_t n, int64_t c,
                                  float scale, float* dlogits, cudaStream_t s) {
  if (n <= 0 || c <= 0) return;
  softmax_backward_kernel<<<grid_for(n * c), kThreads, 0, s>>>(probs, labels, n, c, scale, dlogits);
  check_launch("softmax_xent_backward");
}

}  // namespace mnistctl::cuda
