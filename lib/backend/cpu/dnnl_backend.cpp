// The CPU backend (--ctx cpu) on oneDNN 2.6.
//
// Convolution, matmul (fully connected) and sigmoid and softrelu run as oneDNN primitives;
// pooling, tanh and relu are the CPU's own OpenMP loops (pool_kernels.cpp, eltwise.cpp:
// oneDNN's pooling is slow on plain layouts, its eltwise kernels slower than those loops).
// oneDNN's expensive part is making a primitive (JIT code generation, layout choice), so
// every primitive, its primitive_desc, its memory objects and its argument map are made
// once per descriptor and kept in a cache keyed by every field that shapes them; a call
// then only points the memory objects at the caller's buffers (set_data_handle) and
// executes. The layouts at the Backend boundary are plain (NCHW, KCRS, (out,in)), or nhwc
// for the activations of convolutions and poolings: this backend accepts nhwc and asks for
// it (preferred_layout), so between LeNet's convolutions and poolings the network plan
// passes nhwc tensors and no reorder runs. Inside, convolution runs on nhwc or oneDNN's
// blocked layouts (see act_md), with an argument in another layout reordered at the op
// boundary through scratch buffers cached with the primitive; where both activations are
// nhwc, the two backward directions run as the span loops of span_conv.h where they apply
// (FP32, no column padding, AVX-512F), and are lowered to matmul over im2col's column
// matrix elsewhere (see GemmConv; in bf16 on a CPU with AMX, backward-data runs as
// oneDNN's direct kernel and backward-weights over the transposed columns: backward_path);
// fully connected runs as matmul on the plain buffers (see fc_md). A convolution of a
// single-channel input (LeNet's conv1) with an nhwc output runs its forward and
// backward-weights as the AVX-512 loops of single_channel_conv.h, where the CPU and the
// shape allow (in bf16 with AMX, only the backward-weights: single_channel).
// MNISTCTL_DNNL_LAYOUT=plain|blocked|nhwc selects other convolution layouts,
// MNISTCTL_DNNL_CONV_BACKWARD=direct|gemm|amx|span one backward path and
// MNISTCTL_DNNL_SINGLE_CHANNEL=onednn oneDNN's kernels for single-channel inputs (=blocks
// the loops' block form instead of the tap form), for
// measurements with `mnistctl bench`.
//
// Precision bf16 (BackendOptions): convolution and matmul primitives are made with
// bf16 memory descriptors for their inputs (src, weights, diff_dst) and f32 ones for their
// outputs (dst, diff_src, diff_weights, biases): oneDNN 2.6 picks its BF16 kernels only
// from bf16 descriptors. The boundary reorders that bring plain f32 tensors into the
// primitive's layout (Arg below) also convert them, so BF16 adds no pass over the data;
// where only the type changes (or nhwc becomes NCHW) bf16_convert.h does that conversion.
//
// Threads: Debian's libdnnl is built with DNNL_CPU_RUNTIME=OMP, so oneDNN runs on the
// OpenMP pool and takes its thread count from omp_get_max_threads(). The backend sets it
// (omp_set_num_threads) before making or running primitives, and its own loops (softmax,
// optimizers, fully connected's bias gradient, and HostBackend's fill and gather_batch)
// are OpenMP loops with static schedules and no cross-thread floating-point reductions, so
// a fixed thread count gives bit-identical results run to run.
//
// Memory and the data path are HostBackend's (host/host_backend.h, shared with ref); the
// argument checks are backend/op_checks.h. The numeric loops here stay separate from the
// reference's on purpose, even where they look alike: softmax and Adam run in float where
// ref uses double (and softmax sums per-row slots in order), and dropout, mul and SGD,
// the same float arithmetic as ref's on OpenMP, are ops the tests compare against ref,
// which only means something while ref is its own code.
#include "backend/cpu/dnnl_backend.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <string>
#include <array>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "backend/cpu/bf16_convert.h"
#include "backend/cpu/eltwise.h"
#include "backend/cpu/fma_peak.h"
#include "backend/cpu/im2col.h"
#include "backend/cpu/pool_kernels.h"
#include "backend/cpu/single_channel_conv.h"
#include "backend/cpu/span_conv.h"
#include "backend/host/host_backend.h"
#include "backend/op_checks.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/stop_signals.h"

namespace mnistctl {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, omp_get_num_procs());
}

// The threads the backend runs with. oneDNN's kernels split their work for the thread count
// they ask for and some wait for every part: a parallel region given fewer threads never
// ends. So the count stays within OMP_THREAD_LIMIT, and the runtime may not shrink regions
// on its own (OMP_DYNAMIC): the backend's count is what every region gets.
int backend_threads(int requested) {
  omp_set_dynamic(0);
  const int n = requested > 0 ? requested : usable_cores();
  return std::max(1, std::min(n, omp_get_thread_limit()));
}

memory::desc plain_md(const memory::dims& dims, tag t, dt type = dt::f32) { return memory::desc(dims, type, t); }
memory::desc any_md(const memory::dims& dims, dt type = dt::f32) { return memory::desc(dims, type, tag::any); }

const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
  }
}

// Whether two descriptors hold the same dims in plain strided layouts: no blocking, no
// padding, no offset or extra flags (their data types and strides may differ).
bool plain_same_dims(const memory::desc& a, const memory::desc& b) {
  const dnnl_memory_desc_t &x = a.data, &y = b.data;
  if (x.ndims != y.ndims || x.format_kind != dnnl_blocked || y.format_kind != dnnl_blocked) return false;
  if (x.offset0 != 0 || y.offset0 != 0 || x.extra.flags != 0 || y.extra.flags != 0) return false;
  if (x.format_desc.blocking.inner_nblks != 0 || y.format_desc.blocking.inner_nblks != 0) return false;
  for (int i = 0; i < x.ndims; ++i)
    if (x.dims[i] != y.dims[i] || x.padded_dims[i] != x.dims[i] || y.padded_dims[i] != y.dims[i]) return false;
  return true;
}

// Whether two descriptors lay out the same dims the same dense, unblocked way (their data
// types may differ): then a conversion is all that a reorder between them does.
bool same_dense_layout(const memory::desc& a, const memory::desc& b) {
  if (!plain_same_dims(a, b)) return false;
  const dnnl_memory_desc_t &x = a.data, &y = b.data;
  if (!std::equal(x.format_desc.blocking.strides, x.format_desc.blocking.strides + x.ndims,
                  y.format_desc.blocking.strides))
    return false;
  int64_t elems = 1;
  for (int i = 0; i < x.ndims; ++i) elems *= x.dims[i];
  // Dense: the elements fill the buffer exactly, no gaps between them.
  return a.get_size() == static_cast<size_t>(elems) * memory::data_type_size(a.data_type()) &&
         b.get_size() == static_cast<size_t>(elems) * memory::data_type_size(b.data_type());
}

// Whether `a` is a dense channels-last (n, c, h, w) buffer and `b` the same dims as dense NCHW.
bool nhwc_to_nchw(const memory::desc& a, const memory::desc& b) {
  if (a.data.ndims != 4 || !plain_same_dims(a, b)) return false;
  const int64_t c = a.data.dims[1], h = a.data.dims[2], w = a.data.dims[3];
  const int64_t nhwc[4] = {h * w * c, 1, w * c, c}, nchw[4] = {c * h * w, h * w, w, 1};
  return std::equal(nhwc, nhwc + 4, a.data.format_desc.blocking.strides) &&
         std::equal(nchw, nchw + 4, b.data.format_desc.blocking.strides);
}

// One primitive argument at the op boundary: the caller's plain buffer and, when the
// primitive chose another layout, a scratch buffer in that layout (allocated once, kept
// with the cache entry) plus the reorders between the two.
// An f32 input the primitive wants in bf16 in the same dense layout (same dims, same strides,
// no blocking), or in NCHW from channels-last, is converted by bf16_convert instead of a
// oneDNN reorder: the same bits, at memory speed.
struct Arg {
  memory user, prim;
  dnnl::reorder to_prim, to_user;
  bool reordered = false;
  enum class Convert { reorder, same_layout, nhwc_to_nchw } convert = Convert::reorder;  // for to_prim

  void init(const dnnl::engine& eng, const memory::desc& user_md, const memory::desc& prim_md) {
    user = memory(user_md, eng, DNNL_MEMORY_NONE);
    reordered = user_md != prim_md;
    if (!reordered) {
      prim = user;
      return;
    }
    prim = memory(prim_md, eng);
    to_prim = dnnl::reorder(user, prim);
    to_user = dnnl::reorder(prim, user);
    if (user_md.data_type() == memory::data_type::f32 && prim_md.data_type() == memory::data_type::bf16) {
      if (same_dense_layout(user_md, prim_md)) convert = Convert::same_layout;
      else if (nhwc_to_nchw(user_md, prim_md)) convert = Convert::nhwc_to_nchw;
    }
  }
  // An input: point at the caller's data, bring it into the primitive's layout.
  void in(const float* p, dnnl::stream& s) {
    user.set_data_handle(const_cast<float*>(p));
    if (!reordered) return;
    auto* dst = static_cast<uint16_t*>(prim.get_data_handle());
    const dnnl_dims_t& dims = user.get_desc().data.dims;
    switch (convert) {
      case Convert::same_layout:
        cpu::f32_to_bf16(p, dst, user.get_desc().get_size() / sizeof(float), omp_get_max_threads());
        break;
      case Convert::nhwc_to_nchw:
        cpu::nhwc_to_nchw_bf16(p, dst, dims[0], dims[1], dims[2] * dims[3], omp_get_max_threads());
        break;
      case Convert::reorder:
        to_prim.execute(s, user, prim);
        break;
    }
  }
  // An output: point at the caller's buffer; finish() copies the result there.
  void out(float* p) { user.set_data_handle(p); }
  void finish(dnnl::stream& s) {
    if (reordered) to_user.execute(s, prim, user);
  }
};

// A cached primitive with the arguments it runs on.
struct Op {
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  Arg a, b, c;        // the op's tensor arguments (which is which: see each op)
  memory bias;        // plain (k) bias or diff-bias, when the op has one
  int threads = 1;    // OpenMP threads it was made and runs with (threads_for)
  // A convolution backward lowered to matmul (see GemmConv below): the matmul's own views of
  // a, b, c and the scratch, pointed at one chunk of the batch at a time, and the images in
  // a chunk.
  memory mm_a, mm_b, mm_c;
  int64_t chunk = 1;
};

// The primitive cache key: the op's name and every number that shapes it. Plain integers,
// not a formatted string: the key is built on every call, in the training step's hot path.
struct OpKey {
  const char* what;  // a string literal: compared by address
  std::array<int64_t, 13> v{};
  bool operator==(const OpKey& o) const { return what == o.what && v == o.v; }
  std::string str() const {
    std::string s = what;
    for (int64_t x : v) s += ":" + std::to_string(x);
    return s;
  }
};
struct OpKeyHash {
  size_t operator()(const OpKey& k) const {
    uint64_t h = std::hash<const void*>{}(k.what);
    for (int64_t x : k.v) h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;  // FNV-1a style
    return static_cast<size_t>(h);
  }
};

// x and y: the op's input-side (x or dx) and output-side (y or dy) activations, whose
// layouts (tensor.h) shape the primitive too.
OpKey conv_key(const char* what, const ConvDesc& d, bool bias, const Tensor& x, const Tensor& y) {
  const int64_t layouts = (x.layout == Layout::nhwc ? 1 : 0) | (y.layout == Layout::nhwc ? 2 : 0);
  return {what, {d.n, d.c, d.h, d.w, d.k, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, bias, layouts}};
}

tag tag_of(Layout l) { return l == Layout::nhwc ? tag::nhwc : tag::nchw; }

class DnnlBackend final : public HostBackend {
 public:
  DnnlBackend(int threads, Precision precision)
      : HostBackend("cpu", backend_threads(threads)),
        in_dt_(precision == Precision::bf16 ? dt::bf16 : dt::f32),
        eng_(dnnl::engine::kind::cpu, 0),
        strm_(eng_) {
    // Tuning knob for `mnistctl bench`: "plain", "blocked" or "nhwc" (that convolution layout for
    // every shape); unset or anything else: the default
    // policy (act_md).
    const char* env = std::getenv("MNISTCTL_DNNL_LAYOUT");
    layout_name_ = env ? env : "";
    if (layout_name_ == "plain") conv_layout_ = ConvLayout::plain;
    else if (layout_name_ == "blocked") conv_layout_ = ConvLayout::blocked;
    else if (layout_name_ == "nhwc") conv_layout_ = ConvLayout::nhwc;
    else layout_name_.clear();
    // Tuning knob for `mnistctl bench` and the tests: "direct" or "gemm" (that convolution
    // backward wherever the activations are nhwc and one image's columns fit a chunk; see
    // GemmConv), "amx" (the plan the default takes in bf16 on a CPU with AMX for two or
    // more input channels, on any CPU and precision), or "span" (the span loops wherever
    // they apply, in FP32 as the default, the lowered matmuls elsewhere); with any of them a
    // single-channel convolution's backward runs on oneDNN. Unset or anything else: the
    // default.
    const char* bwd = std::getenv("MNISTCTL_DNNL_CONV_BACKWARD");
    conv_backward_name_ = bwd ? bwd : "";
    if (conv_backward_name_ == "direct") conv_backward_ = ConvBackward::direct;
    else if (conv_backward_name_ == "gemm") conv_backward_ = ConvBackward::gemm;
    else if (conv_backward_name_ == "amx") conv_backward_ = ConvBackward::amx;
    else if (conv_backward_name_ == "span") conv_backward_ = ConvBackward::span;
    else conv_backward_name_.clear();
    amx_ = dnnl::get_effective_cpu_isa() == dnnl::cpu_isa::avx512_core_amx;
    // Tuning knob for `mnistctl bench` and the tests: "onednn" (oneDNN's kernels for
    // single-channel convolutions too), "blocks" (the loops' block form where the tap form
    // would run); unset or anything else: the default.
    const char* single = std::getenv("MNISTCTL_DNNL_SINGLE_CHANNEL");
    single_channel_onednn_ = single && std::string(single) == "onednn";
    single_channel_form_ = single && std::string(single) == "blocks" ? cpu::SingleChannelForm::blocks
                                                                     : cpu::SingleChannelForm::best;
    set_threads();
    // Every OpenMP worker that runs oneDNN gets an alternate signal stack: oneDNN's JIT sgemm
    // points rsp into its heap workspace, where a signal frame must not land (core/stop_signals.h).
#pragma omp parallel num_threads(threads_)
    ensure_signal_stack();
  }

  std::string name() const override {
    const dnnl_version_t* v = dnnl::version();
    return fmt::format("cpu (oneDNN {}.{}.{}, {} thread{}{}{}{}{})", v->major, v->minor, v->patch,
                       threads_, threads_ == 1 ? "" : "s", in_dt_ == dt::bf16 ? ", bf16" : "",
                       layout_name_.empty() ? "" : ", layout " + layout_name_,
                       conv_backward_name_.empty() ? "" : ", conv backward " + conv_backward_name_,
                       single_channel_onednn_                                   ? ", single-channel onednn"
                       : single_channel_form_ == cpu::SingleChannelForm::blocks ? ", single-channel blocks"
                                                                                : "");
  }

  // Convolutions and poolings take nhwc (tensor.h), and nhwc is what the convolutions run in
  // (act_md) unless MNISTCTL_DNNL_LAYOUT asks for plain or blocked ones.
  bool accepts_nhwc() const override { return true; }
  Layout preferred_layout(const ConvDesc&) const override {
    return conv_layout_ == ConvLayout::auto_ || conv_layout_ == ConvLayout::nhwc ? Layout::nhwc : Layout::nchw;
  }

  // The probe follows the ISA oneDNN's kernels use (DNNL_MAX_CPU_ISA can cap it), so that
  // bench's GEMM limit is compared with a peak of the same vector width. In bf16 with AMX
  // there is none: the GEMMs run on the tile unit, which the AVX-512 probe does not measure
  // (the GEMM limit came out at several times that probe's figure).
  std::optional<ArithmeticPeak> measure_peak() override {
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    const bool avx512 = isa == dnnl::cpu_isa::avx512_core || isa == dnnl::cpu_isa::avx512_core_vnni ||
                        isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
    const bool avx2 = isa == dnnl::cpu_isa::avx2 || isa == dnnl::cpu_isa::avx2_vnni;
    cpu::ProbeIsa probe;
    if (in_dt_ == dt::bf16 && amx_) return std::nullopt;
    if (in_dt_ == dt::bf16) probe = cpu::ProbeIsa::avx512_bf16;
    else if (avx512) probe = cpu::ProbeIsa::avx512_fma;
    else if (avx2) probe = cpu::ProbeIsa::avx2_fma;
    else return std::nullopt;
    const double g = cpu::measure_peak_gflops(probe, threads_);
    if (g <= 0) return std::nullopt;
    return ArithmeticPeak{g, fmt::format("{} loop, {} thread{}", cpu::probe_name(probe), threads_, threads_ == 1 ? "" : "s")};
  }

  // ---- fully connected (oneDNN matmul) ------------------------------------------------
  // Each direction is one matmul C = A B on the caller's plain buffers, the transposes
  // written as layouts, not copies (see fc_md): forward y = x W^T + b, with W's (out, in)
  // buffer read as the (in, out) matrix W^T; backward-data dx = dy W; backward-weights
  // dW = dy^T x, with dy read as (out, n), and db = the column sums of dy (matmul has no
  // bias gradient; see column_sums).
  void fc_forward(const FcDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                  Tensor& y) override {
    opcheck::fc_forward(d, x, w, b, y);
    Op& op = cached(OpKey{"fc_fwd", {d.n, d.in, d.out, b != nullptr}}, threads_for(d.n * d.in * d.out), [&] {
      return make_matmul({d.n, d.in, tag::ab}, {d.in, d.out, tag::ba}, {d.n, d.out, tag::ab}, b != nullptr);
    });
    run_forward(op, x, w, b, y);
  }

  void fc_backward_data(const FcDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) override {
    opcheck::fc_backward_data(d, dy, w, dx);
    Op& op = cached(OpKey{"fc_bwd_data", {d.n, d.in, d.out}}, threads_for(d.n * d.in * d.out), [&] {
      return make_matmul({d.n, d.out, tag::ab}, {d.out, d.in, tag::ab}, {d.n, d.in, tag::ab}, false);
    });
    run_forward(op, dy, w, nullptr, dx);
  }

  void fc_backward_weights(const FcDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                           Tensor* db) override {
    opcheck::fc_backward_weights(d, x, dy, dw, db);
    Op& op = cached(OpKey{"fc_bwd_w", {d.n, d.in, d.out}}, threads_for(d.n * d.in * d.out), [&] {
      return make_matmul({d.out, d.n, tag::ba}, {d.n, d.in, tag::ab}, {d.out, d.in, tag::ab}, false);
    });
    run_forward(op, dy, x, nullptr, dw);
    if (db) column_sums(dy.data, d.n, d.out, db->data);
  }

  // ---- convolution ---------------------------------------------------------------------
  void conv_forward(const ConvDesc& d, const Tensor& x, const Tensor& w, const Tensor* b,
                    Tensor& y) override {
    opcheck::conv_args("conv_forward", d, x, w, y, accepts_nhwc());
    if (b) opcheck::numel("conv_forward", "b", *b, d.k);
    if (single_channel(d, y.layout, false)) {
      const int threads = threads_for(conv_macs(d));
      cpu::single_channel_conv_forward(d, x.data, w.data, b ? b->data : nullptr, y.data, in_dt_ == dt::bf16,
                                       scratch(cpu::single_channel_conv_scratch_bytes(d, threads)), threads,
                                       single_channel_form_);
      return;
    }
    Op& op = cached(conv_key("conv_fwd", d, b != nullptr, x, y), threads_for(conv_macs(d)), [&] {
      auto pd = conv_fwd_pd(d, b != nullptr, dt::f32, y.layout, plain_forward(d, y.layout));
      return make_forward<dnnl::convolution_forward>(pd, d, b != nullptr, x.layout, y.layout);
    });
    run_forward(op, x, w, b, y);
  }

  void conv_backward_data(const ConvDesc& d, const Tensor& dy, const Tensor& w,
                          Tensor& dx) override {
    opcheck::conv_args("conv_backward_data", d, dx, w, dy, accepts_nhwc());
    const BackwardPath path = backward_path(d, dx.layout, dy.layout, false);
    if (path == BackwardPath::span) {
      const int threads = threads_for(conv_macs(d));
      cpu::span_conv_backward_data(d, dy.data, w.data, dx.data, scratch(cpu::span_conv_scratch_bytes(d, threads)),
                                   threads);
      return;
    }
    if (path == BackwardPath::gemm) {
      Op& op = cached(conv_key("conv_bwd_data_gemm", d, false, dx, dy), threads_for(conv_macs(d)),
                      [&] { return make_gemm_backward_data(d); });
      run_gemm_backward_data(op, d, dy, w, dx);
      return;
    }
    Op& op = cached(conv_key("conv_bwd_data", d, false, dx, dy), threads_for(conv_macs(d)), [&] {
      const Layout l = dy.layout;
      auto hint = conv_fwd_pd(d, false, in_dt_, l);
      dnnl::convolution_backward_data::desc desc(
          dnnl::algorithm::convolution_direct, act_md(d, d.n, d.c, d.h, d.w, dt::f32, l),
          weight_md(d, in_dt_), act_md(d, d.n, d.k, d.oh(), d.ow(), in_dt_, l), {d.sh, d.sw}, {d.ph, d.pw},
          {d.ph, d.pw});
      dnnl::convolution_backward_data::primitive_desc pd(desc, eng_, hint);
      return make_backward_data<dnnl::convolution_backward_data>(pd, d, dx.layout, dy.layout);
    });
    run_backward_data(op, dy, w, dx);
  }

  void conv_backward_weights(const ConvDesc& d, const Tensor& x, const Tensor& dy, Tensor& dw,
                             Tensor* db) override {
    opcheck::conv_args("conv_backward_weights", d, x, dw, dy, accepts_nhwc());
    if (db) opcheck::numel("conv_backward_weights", "db", *db, d.k);
    if (single_channel(d, dy.layout, true)) {
      const int threads = threads_for(conv_macs(d));
      cpu::single_channel_conv_backward_weights(d, x.data, dy.data, dw.data, db ? db->data : nullptr,
                                                in_dt_ == dt::bf16,
                                                scratch(cpu::single_channel_conv_scratch_bytes(d, threads)), threads,
                                                single_channel_form_);
      return;
    }
    const BackwardPath path = backward_path(d, x.layout, dy.layout, true);
    switch (path) {
      case BackwardPath::gemm:
      case BackwardPath::gemm_t: {
        const bool t = path == BackwardPath::gemm_t;
        Op& op = cached(conv_key(t ? "conv_bwd_w_gemm_t" : "conv_bwd_w_gemm", d, false, x, dy),
                        threads_for(conv_macs(d)), [&] { return make_lowered_backward_weights(d, t); });
        run_lowered_backward_weights(op, d, t, x, dy, dw, db);
        return;
      }
      case BackwardPath::span: {
        const int threads = threads_for(conv_macs(d));
        cpu::span_conv_backward_weights(d, x.data, dy.data, dw.data, db ? db->data : nullptr,
                                        scratch(cpu::span_conv_scratch_bytes(d, threads)), threads);
        return;
      }
      case BackwardPath::direct: break;
    }
    Op& op = cached(conv_key("conv_bwd_w", d, db != nullptr, x, dy), threads_for(conv_macs(d)), [&] {
      const Layout l = dy.layout;
      auto hint = conv_fwd_pd(d, db != nullptr, in_dt_, l);
      dnnl::convolution_backward_weights::desc desc(
          dnnl::algorithm::convolution_direct, act_md(d, d.n, d.c, d.h, d.w, in_dt_, l), weight_md(d, dt::f32),
          db ? plain_md({d.k}, tag::a) : memory::desc(), act_md(d, d.n, d.k, d.oh(), d.ow(), in_dt_, l),
          {d.sh, d.sw}, {d.ph, d.pw}, {d.ph, d.pw});
      dnnl::convolution_backward_weights::primitive_desc pd(desc, eng_, hint);
      return make_backward_weights<dnnl::convolution_backward_weights>(pd, d, db != nullptr, x.layout, dy.layout);
    });
    run_backward_weights(op, x, dy, dw, db);
  }

  // ---- pooling (NCHW or nhwc, OpenMP loops in pool_kernels.cpp) -----------------------
  // Max pooling keeps one int32 argmax index per output in the caller's workspace.
  Buffer pool_workspace(const PoolDesc& d) override {
    check_pool_desc("pool_workspace", d);
    size_t bytes = cpu::pool_workspace_bytes(d);
    return bytes ? alloc_bytes(bytes) : Buffer{};
  }

  void pool_forward(const PoolDesc& d, const Tensor& x, Tensor& y, Buffer& ws) override {
    check_pool("pool_forward", d, x, y);
    check_pool_ws("pool_forward", d, ws);
    cpu::pool_forward(d, x.layout, y.layout, x.data, y.data, static_cast<int32_t*>(ws.data), threads_);
  }

  void pool_backward(const PoolDesc& d, const Tensor& x, const Tensor& y, const Tensor& dy,
                     const Buffer& ws, Tensor& dx) override {
    check_pool("pool_backward", d, x, y);
    check_pool("pool_backward", d, dx, dy);
    check_pool_ws("pool_backward", d, ws);
    // The workspace was laid out as the forward's y: dy must be too, and dx as x.
    if (dx.layout != x.layout || dy.layout != y.layout)
      throw RuntimeError("pool_backward: dx and dy must have the layouts of x and y");
    cpu::pool_backward(d, dx.layout, dy.layout, dy.data, static_cast<const int32_t*>(ws.data), dx.data,
                       threads_);
  }

  // ---- elementwise ---------------------------------------------------------------------
  void act_forward(ActType a, const Tensor& x, Tensor& y) override {
    opcheck::same("act_forward", x, y);
    if (x.numel() == 0) return;
    if (cpu::eltwise_supported(a))
      return cpu::eltwise_forward(a, x.data, y.data, x.numel(), threads_for(x.numel() * kEltwiseWeight));
    Op& op = cached(OpKey{"act_fwd", {static_cast<int64_t>(a), x.numel()}}, threads_for(x.numel() * kEltwiseWeight), [&] {
      auto pd = act_fwd_pd(a, x.numel());
      auto o = std::make_unique<Op>();
      o->prim = dnnl::eltwise_forward(pd);
      o->a.init(eng_, pd.src_desc(), pd.src_desc());
      o->c.init(eng_, pd.dst_desc(), pd.dst_desc());
      o->args = {{DNNL_ARG_SRC, o->a.prim}, {DNNL_ARG_DST, o->c.prim}};
      return o;
    });
    op.a.user.set_data_handle(x.data);
    op.c.user.set_data_handle(y.data);
    op.prim.execute(strm_, op.args);
    strm_.wait();
  }

  // tanh and relu run on the CPU's own loops where it has AVX-512 (eltwise.h), the rest on
  // oneDNN. tanh, sigmoid and relu use y (oneDNN's *_use_dst_for_bwd); softrelu needs x.
  void act_backward(ActType a, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor& dx) override {
    opcheck::same("act_backward", x, dy);
    opcheck::same("act_backward", x, dx);
    opcheck::same("act_backward", x, y);
    if (x.numel() == 0) return;
    if (cpu::eltwise_supported(a))
      return cpu::eltwise_backward(a, y.data, dy.data, dx.data, x.numel(), threads_for(x.numel() * kEltwiseWeight));
    Op& op = cached(OpKey{"act_bwd", {static_cast<int64_t>(a), x.numel()}}, threads_for(x.numel() * kEltwiseWeight), [&] {
      auto hint = act_fwd_pd(a, x.numel());
      memory::desc md = plain_md({x.numel()}, tag::a);
      dnnl::eltwise_backward::desc desc(act_alg(a), md, md);
      dnnl::eltwise_backward::primitive_desc pd(desc, eng_, hint);
      auto o = std::make_unique<Op>();
      o->prim = dnnl::eltwise_backward(pd);
      o->a.init(eng_, md, md);  // data: x or y
      o->b.init(eng_, md, md);  // diff_dst
      o->c.init(eng_, md, md);  // diff_src
      o->args = {{uses_dst(a) ? DNNL_ARG_DST : DNNL_ARG_SRC, o->a.prim},
                 {DNNL_ARG_DIFF_DST, o->b.prim},
                 {DNNL_ARG_DIFF_SRC, o->c.prim}};
      return o;
    });
    op.a.user.set_data_handle(uses_dst(a) ? y.data : x.data);
    op.b.user.set_data_handle(dy.data);
    op.c.user.set_data_handle(dx.data);
    op.prim.execute(strm_, op.args);
    strm_.wait();
  }

  void dropout_forward(float p, uint64_t seed, uint64_t counter, const Tensor& x, Tensor& y,
                       Tensor& mask) override {
    opcheck::same("dropout_forward", x, y);
    opcheck::same("dropout_forward", x, mask);
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const int64_t n = x.numel();
    const float* xd = x.data;
    float* yd = y.data;
    float* md = mask.data;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      float m = hash_uniform(seed, counter + static_cast<uint64_t>(i)) >= p ? scale : 0.0f;
      md[i] = m;
      yd[i] = xd[i] * m;
    }
  }

  void mul(const Tensor& a, const Tensor& b, Tensor& out) override {
    opcheck::same("mul", a, b);
    opcheck::same("mul", a, out);
    const int64_t n = a.numel();
    const float* ad = a.data;
    const float* bd = b.data;
    float* od = out.data;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) od[i] = ad[i] * bd[i];
  }

  // ---- softmax + cross-entropy ---------------------------------------------------------
  // Rows run in parallel; each row's loss and hit go to a per-row slot that one thread
  // sums in order afterwards, so the metrics do not depend on the thread count.
  void softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                            Tensor* metrics) override {
    // Plain copies of the bindings: clang 14 cannot name a structured binding inside an
    // OpenMP region (the fuzz build uses clang).
    const auto [rows, cols, have_labels] = opcheck::softmax_xent_forward(logits, labels, probs, metrics);
    const int64_t n = rows, k = cols;
    row_loss_.assign(static_cast<size_t>(n), 0.0);
    row_hit_.assign(static_cast<size_t>(n), 0);
    const float* z = logits.data;
    float* pr = probs.data;
    const float* lab = have_labels ? labels.data : nullptr;
    double* loss = row_loss_.data();
    uint8_t* hit = row_hit_.data();
#pragma omp parallel for schedule(static) num_threads(threads_) if (n * k >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float* zi = z + i * k;
      float* pi = pr + i * k;
      int64_t best = 0;
      for (int64_t j = 1; j < k; ++j)
        if (zi[j] > zi[best]) best = j;
      const float mx = zi[best];
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        pi[j] = std::exp(zi[j] - mx);
        sum += pi[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < k; ++j) pi[j] *= inv;
      if (lab) {
        const float l = lab[i];
        const bool valid = l >= 0.0f && l < static_cast<float>(k);
        const int64_t li = valid ? static_cast<int64_t>(l) : -1;
        loss[i] = -std::log(std::max(valid ? static_cast<double>(pi[li]) : 0.0, 1e-12));
        hit[i] = li == best;
      }
    }
    if (metrics && have_labels) {
      double total = 0.0, correct = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        total += loss[i];
        correct += hit[i];
      }
      metrics->data[kMetricLossSum] += static_cast<float>(total);
      metrics->data[kMetricCorrect] += static_cast<float>(correct);
      metrics->data[kMetricCount] += static_cast<float>(n);
    }
  }

  void softmax_xent_backward(const Tensor& probs, const Tensor& labels, float scale,
                             Tensor& dlogits) override {
    const auto [rows, cols] = opcheck::softmax_xent_backward(probs, labels, dlogits);
    const int64_t n = rows, k = cols;  // see softmax_xent_forward
    const float* p = probs.data;
    const float* lab = labels.data;
    float* g = dlogits.data;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n * k >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float l = lab[i];
      const int64_t li = l >= 0.0f && l < static_cast<float>(k) ? static_cast<int64_t>(l) : -1;
      for (int64_t j = 0; j < k; ++j)
        g[i * k + j] = (p[i * k + j] - (j == li ? 1.0f : 0.0f)) * scale;
    }
  }

  // ---- optimizers ----------------------------------------------------------------------
  void sgd_update(Tensor& w, const Tensor& g, Tensor* mom, float lr, float momentum,
                  float wd) override {
    opcheck::sgd_update(w, g, mom, momentum);
    const int64_t n = w.numel();
    float* wd_ = w.data;
    const float* gd = g.data;
    if (momentum != 0.0f) {
      float* md = mom->data;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        float gi = gd[i] + wd * wd_[i];
        md[i] = momentum * md[i] - lr * gi;
        wd_[i] += md[i];
      }
    } else {
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        float gi = gd[i] + wd * wd_[i];
        wd_[i] -= lr * gi;
      }
    }
  }

  void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, float lr, float beta1,
                   float beta2, float eps, float wd, int64_t step) override {
    opcheck::adam_update(w, g, m, v, step);
    const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step))));
    const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step))));
    const int64_t n = w.numel();
    float* wp = w.data;
    const float* gp = g.data;
    float* mp = m.data;
    float* vp = v.data;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      float gi = gp[i] + wd * wp[i];
      float mi = beta1 * mp[i] + (1.0f - beta1) * gi;
      float vi = beta2 * vp[i] + (1.0f - beta2) * gi * gi;
      mp[i] = mi;
      vp[i] = vi;
      wp[i] -= lr * (mi * c1) / (std::sqrt(vi * c2) + eps);
    }
  }

 private:
  // oneDNN (OpenMP runtime) sizes its parallel regions from omp_get_max_threads() of the
  // calling thread; set it here so that a backend used from any thread gets its count.
  void set_threads(int n) {
    if (omp_get_max_threads() != n) omp_set_num_threads(n);
  }
  void set_threads() { set_threads(threads_); }

  // The threads a primitive is made and run with: one below kSmallWork multiply-adds
  // (activations: below kSmallWork / kEltwiseWeight elements, an element of oneDNN's tanh
  // costing about as much as that many multiply-adds; the split point was measured with
  // oneDNN's eltwise kernels and stays for the own tanh and relu loops), where entering an
  // OpenMP region costs more
  // than the second thread gives (the MLP's fc2 and fc3 and its activations, LeNet's fc2
  // and tanh3; LeNet's tanh1 and tanh2 run on all threads). A function of the shape and the
  // thread count only, so results stay bit-identical run to run at a fixed --threads.
  static constexpr int64_t kSmallWork = int64_t{1} << 20;
  static constexpr int64_t kEltwiseWeight = 16;
  int threads_for(int64_t work) const { return work < kSmallWork ? 1 : threads_; }
  static int64_t conv_macs(const ConvDesc& d) { return d.n * d.k * d.oh() * d.ow() * d.c * d.kh * d.kw; }

  // Finds or makes (with `threads`, which the entry keeps) the cached Op for `key`, and
  // sets the OpenMP thread count the entry runs with.
  template <typename Make>
  Op& cached(const OpKey& key, int threads, Make make) {
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      set_threads(it->second->threads);
      return *it->second;
    }
    set_threads(threads);
    std::unique_ptr<Op> op;
    try {
      op = make();
    } catch (const dnnl::error& e) {
      throw RuntimeError(fmt::format("cpu: oneDNN cannot make {}: {} (status {})", key.str(), e.what(),
                                     static_cast<int>(e.status)));
    }
    op->threads = threads;
    return *cache_.emplace(key, std::move(op)).first->second;
  }

  // Makes a convolution primitive of type Prim from its primitive_desc and wires it: a = src
  // (x / dx), b = weights (w / dw), c = dst (y / dy), each between the plain user layout and
  // the layout the primitive chose (prim_a/b/c), plus the plain bias (or diff-bias) when
  // present. The cache entry every conv op keeps (see make_forward).
  template <typename Prim, typename PD>
  std::unique_ptr<Op> make_op(const PD& pd, const ConvDesc& d, bool bias, Layout la, Layout lc, int arg_a,
                              int arg_b, int arg_c, int arg_bias, const memory::desc& prim_a,
                              const memory::desc& prim_b, const memory::desc& prim_c) {
    auto op = std::make_unique<Op>();
    Op& o = *op;
    o.prim = Prim(pd);
    o.a.init(eng_, plain_md({d.n, d.c, d.h, d.w}, tag_of(la)), prim_a);
    o.b.init(eng_, plain_md({d.k, d.c, d.kh, d.kw}, tag::oihw), prim_b);
    o.c.init(eng_, plain_md({d.n, d.k, d.oh(), d.ow()}, tag_of(lc)), prim_c);
    o.args = {{arg_a, o.a.prim}, {arg_b, o.b.prim}, {arg_c, o.c.prim}};
    if (bias) {
      o.bias = memory(plain_md({d.k}, tag::a), eng_, DNNL_MEMORY_NONE);
      o.args[arg_bias] = o.bias;
    }
    return op;
  }

  // Each convolution direction's entry and its run (run_forward also runs a matmul):
  // make_* fixes which primitive argument is a, b and c (with the caller's layouts of a and
  // c); run_* points them at the caller's tensors (reordering inputs in), executes, reorders
  // the result out and waits.
  template <typename Prim, typename PD>
  std::unique_ptr<Op> make_forward(const PD& pd, const ConvDesc& d, bool bias, Layout la, Layout lc) {
    return make_op<Prim>(pd, d, bias, la, lc, DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS,
                         pd.src_desc(), pd.weights_desc(), pd.dst_desc());
  }
  template <typename Prim, typename PD>
  std::unique_ptr<Op> make_backward_data(const PD& pd, const ConvDesc& d, Layout la, Layout lc) {
    return make_op<Prim>(pd, d, false, la, lc, DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST, 0,
                         pd.diff_src_desc(), pd.weights_desc(), pd.diff_dst_desc());
  }
  template <typename Prim, typename PD>
  std::unique_ptr<Op> make_backward_weights(const PD& pd, const ConvDesc& d, bool bias, Layout la, Layout lc) {
    return make_op<Prim>(pd, d, bias, la, lc, DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST,
                         DNNL_ARG_DIFF_BIAS, pd.src_desc(), pd.diff_weights_desc(),
                         pd.diff_dst_desc());
  }
  void run_forward(Op& op, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
    op.a.in(x.data, strm_);
    op.b.in(w.data, strm_);
    if (b) op.bias.set_data_handle(b->data);
    op.c.out(y.data);
    execute(op, op.c);
  }
  void run_backward_data(Op& op, const Tensor& dy, const Tensor& w, Tensor& dx) {
    op.c.in(dy.data, strm_);
    op.b.in(w.data, strm_);
    op.a.out(dx.data);
    execute(op, op.a);
  }
  void run_backward_weights(Op& op, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* db) {
    op.a.in(x.data, strm_);
    op.c.in(dy.data, strm_);
    op.b.out(dw.data);
    if (db) op.bias.set_data_handle(db->data);
    execute(op, op.b);
  }
  void execute(Op& op, Arg& result) {
    op.prim.execute(strm_, op.args);
    result.finish(strm_);
    strm_.wait();
  }

  // Convolution activations, given the layout of the caller's output-side tensor (y or dy;
  // the network plan gives nhwc wherever preferred_layout asks for it): nhwc, oneDNN's brgemm
  // convolution, which pads nothing (the blocked layout pads LeNet's 20 and 50 channels to
  // 32 and 64) and then needs no reorder at all. When the caller's tensors are NCHW and the
  // input has one channel (a convolution the plan could not give nhwc), blocked (nChw16c,
  // oneDNN's choice through `any`) for the backward directions, where its kernels are the
  // fastest, and the forward is plain (plain_forward); in bf16 nhwc there too: for one
  // input channel the blocked bf16 backward-weights falls back to oneDNN's gemm convolution,
  // several times slower. Measured in docs/performance.md, section 6.
  memory::desc act_md(const ConvDesc& d, int64_t n, int64_t c, int64_t h, int64_t w, dt type, Layout user) const {
    if (conv_layout_ == ConvLayout::plain) return plain_md({n, c, h, w}, tag::nchw, type);
    if (conv_layout_ == ConvLayout::nhwc ||
        (conv_layout_ == ConvLayout::auto_ && (user == Layout::nhwc || d.c > 1 || in_dt_ == dt::bf16)))
      return plain_md({n, c, h, w}, tag::nhwc, type);
    return any_md({n, c, h, w}, type);
  }
  // The forward of a single-channel input with an NCHW output runs on the plain layouts,
  // where oneDNN uses its gemm convolution: the faster blocked or nhwc kernel's output would
  // have to be reordered back to NCHW on every call, and that costs more than the gemm
  // gives up. In bf16 too (a BF16 gemm on NCHW).
  bool plain_forward(const ConvDesc& d, Layout out) const {
    return conv_layout_ == ConvLayout::auto_ && d.c == 1 && out == Layout::nchw;
  }
  memory::desc weight_md(const ConvDesc& d, dt type) const {
    return conv_layout_ != ConvLayout::plain ? any_md({d.k, d.c, d.kh, d.kw}, type)
                                             : plain_md({d.k, d.c, d.kh, d.kw}, tag::oihw, type);
  }
  // Fully connected runs as oneDNN matmul on the plain buffers: a matrix is (rows, cols,
  // layout), "ab" row-major and "ba" the transpose of a row-major buffer, so every direction
  // reads the caller's data in place (in bf16, the Arg reorder converts it and nothing
  // more). Matmul's brgemm kernels beat inner product's gemm on LeNet's and the MLP's shapes,
  // most with 2 threads (docs/performance.md, section 6); inner product's own brgemm kernels
  // (format_tag::any) want blocked weights, reordered in and out on every call.
  struct Mat {
    int64_t rows, cols;
    tag layout;
  };
  static memory::desc fc_md(const Mat& m, dt type) { return plain_md({m.rows, m.cols}, m.layout, type); }

  // C = A B (+ bias, a row of C's width): A and B in the backend's precision, C in f32.
  std::unique_ptr<Op> make_matmul(const Mat& a, const Mat& b, const Mat& c, bool bias) {
    const memory::desc bias_md = bias ? plain_md({1, c.cols}, tag::ab) : memory::desc();
    dnnl::matmul::desc desc(fc_md(a, in_dt_), fc_md(b, in_dt_), bias_md, fc_md(c, dt::f32));
    dnnl::matmul::primitive_desc pd(desc, eng_);
    auto op = std::make_unique<Op>();
    op->prim = dnnl::matmul(pd);
    op->a.init(eng_, fc_md(a, dt::f32), pd.src_desc());
    op->b.init(eng_, fc_md(b, dt::f32), pd.weights_desc());
    op->c.init(eng_, fc_md(c, dt::f32), pd.dst_desc());
    op->args = {{DNNL_ARG_SRC, op->a.prim}, {DNNL_ARG_WEIGHTS, op->b.prim}, {DNNL_ARG_DST, op->c.prim}};
    if (bias) {
      op->bias = memory(bias_md, eng_, DNNL_MEMORY_NONE);
      op->args[DNNL_ARG_BIAS] = op->bias;
    }
    return op;
  }
  // sums[j] = sum over i of m[i][j], for a row-major (rows, cols) m: each column is summed in
  // row order by one thread whatever the thread count, so the result is bit-identical from run
  // to run (runs on the thread count the calling op set).
  static void column_sums(const float* m, int64_t rows, int64_t cols, float* sums) {
    constexpr int64_t kBlock = 64;  // columns per task: one cache line apart at most, vectorised
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < cols; j0 += kBlock) {
      const int64_t j1 = std::min(cols, j0 + kBlock);
      for (int64_t j = j0; j < j1; ++j) sums[j] = 0.0f;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = j0; j < j1; ++j) sums[j] += m[i * cols + j];
    }
  }

  // The forward primitive_desc: inputs in the backend's precision, dst in `dst_type` (f32
  // for the forward op itself; the input precision when it serves as a backward op's hint,
  // whose diff_dst is an input). `user`: the layout of the caller's y or dy (see act_md).
  // `plain`: the caller's own NCHW layouts (see plain_forward).
  dnnl::convolution_forward::primitive_desc conv_fwd_pd(const ConvDesc& d, bool bias, dt dst_type, Layout user,
                                                        bool plain = false) {
    auto amd = [&](int64_t c, int64_t h, int64_t w, dt type) {
      return plain ? plain_md({d.n, c, h, w}, tag::nchw, type) : act_md(d, d.n, c, h, w, type, user);
    };
    dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, amd(d.c, d.h, d.w, in_dt_),
        plain ? plain_md({d.k, d.c, d.kh, d.kw}, tag::oihw, in_dt_) : weight_md(d, in_dt_),
        bias ? plain_md({d.k}, tag::a) : memory::desc(), amd(d.k, d.oh(), d.ow(), dst_type), {d.sh, d.sw},
        {d.ph, d.pw}, {d.ph, d.pw});
    return dnnl::convolution_forward::primitive_desc(desc, eng_);
  }

  // The argmax indices are int32 offsets within an input plane.
  static void check_pool_desc(const char* op, const PoolDesc& d) {
    opcheck::pool(op, d);
    if (d.h * d.w > INT32_MAX)
      throw RuntimeError(fmt::format("{}: input plane {}x{} too large for int32 indices", op, d.h, d.w));
  }
  void check_pool(const char* op, const PoolDesc& d, const Tensor& x, const Tensor& y) const {
    check_pool_desc(op, d);
    opcheck::pool_args(op, d, x, y, accepts_nhwc());
  }
  static void check_pool_ws(const char* op, const PoolDesc& d, const Buffer& ws) {
    const size_t need = cpu::pool_workspace_bytes(d);
    if (ws.bytes < need || (need && !ws.data))
      throw RuntimeError(fmt::format("{}: workspace of {} bytes, {} needed (make it with pool_workspace)",
                                     op, ws.bytes, need));
  }

  static bool uses_dst(ActType a) { return a != ActType::softrelu; }
  static dnnl::algorithm act_alg(ActType a) {
    switch (a) {
      case ActType::relu: return dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
      case ActType::tanh: return dnnl::algorithm::eltwise_tanh_use_dst_for_bwd;
      case ActType::sigmoid: return dnnl::algorithm::eltwise_logistic_use_dst_for_bwd;
      case ActType::softrelu: break;
    }
    return dnnl::algorithm::eltwise_soft_relu;  // log(1 + e^x) in oneDNN 2.x
  }
  dnnl::eltwise_forward::primitive_desc act_fwd_pd(ActType a, int64_t numel) {
    dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_training, act_alg(a),
                                     plain_md({numel}, tag::a), 0.0f, 0.0f);
    return dnnl::eltwise_forward::primitive_desc(desc, eng_);
  }

  // ---- GemmConv: the backward convolutions lowered to matmul ------------------------------
  // On nhwc activations oneDNN 2.6's backward convolution kernels (jit, jit_bf16) reach well
  // below its matmul on the same multiply-adds, so where both activations are nhwc the two
  // backward directions run as matmuls over the column matrix of im2col.h:
  //   backward-data:    dcols (R x P) = dy (R x k) W (k x P), then dx = col2im(dcols);
  //   backward-weights: dW (k x P) = dy^T (k x R) cols (R x P), cols = im2col(x),
  // with R = n*oh*ow, P = kh*kw*c and W read as ohwi (Arg reorders KCRS to it, and converts
  // to bf16 with the activations). Both walk the batch in equal chunks of whole images, the
  // column matrix of a chunk at most kChunkBytes: the scratch stays bounded, while the chunks
  // stay large enough for the matmul to split well over the threads (smaller, cache-sized
  // chunks, and one chunk per thread, both measured slower). Backward-weights adds each
  // chunk's product into dW (a sum post-op) in chunk order. The forward stays oneDNN's
  // brgemm convolution, as fast as im2col + matmul. Measured in docs/performance.md, section 6.
  static constexpr size_t kChunkBytes = size_t{8} << 20;
  // Single-channel inputs (LeNet's conv1) keep the direct kernel: with P = kh*kw the matmul's
  // reduction per row is too short to pay for the column matrix.
  static constexpr int64_t kGemmMinChannels = 2;

  // The column matrix's bytes for one image (f32 entries: dcols, and cols in f32 mode).
  static size_t cols_bytes_per_image(const ConvDesc& d) {
    return static_cast<size_t>(d.oh() * d.ow()) * static_cast<size_t>(d.kh * d.kw * d.c) * sizeof(float);
  }
  // The most images whose column matrix fits kChunkBytes (at most n).
  static int64_t chunk_fit(const ConvDesc& d) {
    return std::min(d.n, static_cast<int64_t>(kChunkBytes / cols_bytes_per_image(d)));
  }
  // Images per chunk: the largest divisor of n within chunk_fit, so that every chunk has the
  // same shape and one primitive serves them all.
  static int64_t chunk_images(const ConvDesc& d) { return largest_divisor(d.n, chunk_fit(d)); }
  // The largest divisor of n that is at most `limit`.
  static int64_t largest_divisor(int64_t n, int64_t limit) {
    int64_t best = 1;
    for (int64_t i = 1; i <= limit; ++i)
      if (n % i == 0) best = i;
    return best;
  }
  bool gemm_backward(const ConvDesc& d, Layout x, Layout y) const {
    if (conv_backward_ == ConvBackward::direct || conv_layout_ != ConvLayout::auto_) return false;
    if (x != Layout::nhwc || y != Layout::nhwc) return false;
    if (conv_backward_ != ConvBackward::gemm && d.c < kGemmMinChannels) return false;
    // One image's column matrix must fit a chunk (the tensors exist, so each factor is
    // bounded; the product is formed in double first), and by default a batch size with no
    // divisor near the chunk size (a prime one, say) would make many small matmuls: the
    // direct kernel then.
    if (static_cast<double>(d.oh()) * d.ow() * d.kh * d.kw * d.c * sizeof(float) > static_cast<double>(kChunkBytes))
      return false;
    if (conv_backward_ == ConvBackward::gemm) return true;
    return 2 * chunk_images(d) >= chunk_fit(d);
  }
  // Where gemm_backward takes the lowered path, the AMX plan (the default in bf16 on a CPU
  // with AMX, or the knob) runs backward-data as oneDNN's direct kernel and backward-weights
  // on the transposed columns: with AMX, the matmul dcols = dy W (a reduction only k long,
  // and an f32 output P times dy's size) costs more than the direct kernel, and dW = dy^T
  // cols ran at a fraction of the speed of dW^T = colsT dy, whose operands both hold the
  // long reduction contiguously. Measured in docs/performance.md, section 6.
  //
  // In FP32, both directions run as the span loops (span_conv.h) where they apply: no column
  // matrix, and faster than the lowered matmuls in the step (docs/performance.md, section 6).
  enum class BackwardPath { direct, gemm, gemm_t, span };
  BackwardPath backward_path(const ConvDesc& d, Layout x, Layout y, bool weights) const {
    if (span_backward(d, x, y)) return BackwardPath::span;
    if (!gemm_backward(d, x, y)) return BackwardPath::direct;
    const bool amx_plan = conv_backward_ == ConvBackward::amx ||
                          (conv_backward_ == ConvBackward::auto_ && in_dt_ == dt::bf16 && amx_);
    if (!amx_plan) return BackwardPath::gemm;
    if (!weights) return BackwardPath::direct;
    // By default, as in gemm_backward: a batch size with no divisor near the transposed
    // chunk size would make many small matmuls; the untransposed columns then.
    if (conv_backward_ == ConvBackward::auto_ && 2 * chunk_t_images(d) < chunk_t_fit(d)) return BackwardPath::gemm;
    return BackwardPath::gemm_t;
  }
  // Whether the span loops run the backward of `d`: FP32, both activations nhwc, the default
  // layout policy, the default backward path (or the "span" knob), and a shape they take.
  bool span_backward(const ConvDesc& d, Layout x, Layout y) const {
    if (conv_backward_ != ConvBackward::auto_ && conv_backward_ != ConvBackward::span) return false;
    if (in_dt_ != dt::f32 || conv_layout_ != ConvLayout::auto_ || x != Layout::nhwc || y != Layout::nhwc) return false;
    return cpu::span_conv_supported(d);
  }
  // Whether convolution `d` with its output (or output gradient) in layout `y` runs as the
  // single-channel loops (single_channel_conv.h): nhwc output, the default layout policy, the
  // knob not set, for the backward no forced backward path, and for the forward not bf16 on
  // AMX. One input channel has the same bytes in NCHW and nhwc, so the input's layout does
  // not matter.
  bool single_channel(const ConvDesc& d, Layout y, bool backward) const {
    if (single_channel_onednn_ || conv_layout_ != ConvLayout::auto_ || y != Layout::nhwc) return false;
    if (backward && conv_backward_ != ConvBackward::auto_) return false;
    // In bf16 with AMX, oneDNN's forward (the tile unit) is faster than the loops' FP32
    // multiply-adds; its backward-weights is not. Measured in docs/performance.md, section 6.
    if (!backward && in_dt_ == dt::bf16 && amx_) return false;
    return cpu::single_channel_conv_supported(d);
  }
  // The scratch every lowered convolution, the single-channel loops and the span loops share
  // (one runs at a time): HostBackend's 64-byte aligned memory, grown to the largest need
  // and then kept.
  void* scratch(size_t bytes) {
    if (bytes > scratch_.bytes) scratch_ = alloc_bytes(bytes);
    return scratch_.data;
  }
  static memory::desc act_nhwc(int64_t n, int64_t c, int64_t h, int64_t w, dt type) {
    return plain_md({n, c, h, w}, tag::nhwc, type);
  }
  // The matmul views' memory objects (their handles are set on every run) and the argument map.
  static void wire_matmul(Op& o, const dnnl::matmul::primitive_desc& pd, const dnnl::engine& eng) {
    o.prim = dnnl::matmul(pd);
    o.mm_a = memory(pd.src_desc(), eng, DNNL_MEMORY_NONE);
    o.mm_b = memory(pd.weights_desc(), eng, DNNL_MEMORY_NONE);
    o.mm_c = memory(pd.dst_desc(), eng, DNNL_MEMORY_NONE);
    o.args = {{DNNL_ARG_SRC, o.mm_a}, {DNNL_ARG_WEIGHTS, o.mm_b}, {DNNL_ARG_DST, o.mm_c}};
  }
  static void* at(const memory& m, size_t byte_offset) {
    return static_cast<unsigned char*>(m.get_data_handle()) + byte_offset;
  }

  // a: unused; b: W (KCRS f32 -> ohwi in the backend's precision); c: dy (nhwc f32 -> nhwc).
  std::unique_ptr<Op> make_gemm_backward_data(const ConvDesc& d) {
    auto op = std::make_unique<Op>();
    op->chunk = chunk_images(d);
    const int64_t rc = op->chunk * d.oh() * d.ow(), p = d.kh * d.kw * d.c;
    op->b.init(eng_, plain_md({d.k, d.c, d.kh, d.kw}, tag::oihw), plain_md({d.k, d.c, d.kh, d.kw}, tag::ohwi, in_dt_));
    op->c.init(eng_, act_nhwc(d.n, d.k, d.oh(), d.ow(), dt::f32), act_nhwc(d.n, d.k, d.oh(), d.ow(), in_dt_));
    dnnl::matmul::desc desc(plain_md({rc, d.k}, tag::ab, in_dt_), plain_md({d.k, p}, tag::ab, in_dt_),
                            plain_md({rc, p}, tag::ab));
    wire_matmul(*op, dnnl::matmul::primitive_desc(desc, eng_), eng_);
    return op;
  }
  void run_gemm_backward_data(Op& op, const ConvDesc& d, const Tensor& dy, const Tensor& w, Tensor& dx) {
    op.c.in(dy.data, strm_);
    op.b.in(w.data, strm_);
    strm_.wait();
    const int64_t ci = op.chunk;
    ConvDesc chunk = d;
    chunk.n = ci;
    const size_t elem = memory::data_type_size(in_dt_);
    const size_t dy_chunk = static_cast<size_t>(ci * d.oh() * d.ow() * d.k) * elem;
    const int64_t dx_chunk = ci * d.h * d.w * d.c;
    auto* dcols = static_cast<float*>(scratch(static_cast<size_t>(ci) * cols_bytes_per_image(d)));
    op.mm_b.set_data_handle(op.b.prim.get_data_handle());
    op.mm_c.set_data_handle(dcols);
    for (int64_t i = 0; i < d.n / ci; ++i) {
      op.mm_a.set_data_handle(at(op.c.prim, static_cast<size_t>(i) * dy_chunk));
      op.prim.execute(strm_, op.args);
      strm_.wait();
      cpu::col2im_nhwc(chunk, dcols, dx.data + i * dx_chunk, op.threads);
    }
  }

  // The transposed form (backward_path): dW^T (P x k) += colsT (P x Rc) dy (Rc x k) per chunk,
  // colsT from x in NCHW (im2col_t_nchw), dW^T written through a strided view of the KCRS
  // result (b's reorder transposes it). Chunks are smaller than kChunkBytes: colsT of a
  // chunk within kChunkTBytes, about half a core's L2, so that the matmul reads it from
  // there right after im2col_t wrote it (one image per chunk where one image's colsT is
  // larger; gemm_backward's limit on one image's columns still applies).
  static constexpr size_t kChunkTBytes = size_t{1} << 20;
  int64_t chunk_t_fit(const ConvDesc& d) const {
    const size_t per_image = static_cast<size_t>(d.oh() * d.ow()) * static_cast<size_t>(d.kh * d.kw * d.c) *
                             memory::data_type_size(in_dt_);
    return std::max<int64_t>(1, std::min<int64_t>(d.n, static_cast<int64_t>(kChunkTBytes / per_image)));
  }
  int64_t chunk_t_images(const ConvDesc& d) const { return largest_divisor(d.n, chunk_t_fit(d)); }
  // Backward-weights over the column matrix, in either form, chunk by chunk:
  //   untransposed (GemmConv): dW (k x P, ohwi) += dy_chunk^T cols_chunk, dy^T being the
  //     chunk of dy's (R x k) buffer read with strides, not a copy;
  //   transposed (the AMX plan): dW^T (P x k) += colsT_chunk dy_chunk.
  // a: x (nhwc f32 -> nhwc, or nchw when transposed); b: dW (KCRS <- ohwi, or <- the P x k
  // view); c: dy (nhwc f32 -> nhwc). dW starts at zero; a sum post-op adds each chunk.
  std::unique_ptr<Op> make_lowered_backward_weights(const ConvDesc& d, bool transposed) {
    auto op = std::make_unique<Op>();
    op->chunk = transposed ? chunk_t_images(d) : chunk_images(d);
    const int64_t rc = op->chunk * d.oh() * d.ow(), p = d.kh * d.kw * d.c;
    const memory::desc kcrs = plain_md({d.k, d.c, d.kh, d.kw}, tag::oihw);
    op->c.init(eng_, act_nhwc(d.n, d.k, d.oh(), d.ow(), dt::f32), act_nhwc(d.n, d.k, d.oh(), d.ow(), in_dt_));
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(sum);
    if (transposed) {
      op->a.init(eng_, act_nhwc(d.n, d.c, d.h, d.w, dt::f32), plain_md({d.n, d.c, d.h, d.w}, tag::nchw, in_dt_));
      // dW^T's row (c, ky, kx), column k is KCRS element (k, c, ky, kx).
      op->b.init(eng_, kcrs, memory::desc({d.k, d.c, d.kh, d.kw}, dt::f32,
                                          memory::dims{1, d.kh * d.kw * d.k, d.kw * d.k, d.k}));
      dnnl::matmul::desc desc(plain_md({p, rc}, tag::ab, in_dt_), plain_md({rc, d.k}, tag::ab, in_dt_),
                              plain_md({p, d.k}, tag::ab));
      wire_matmul(*op, dnnl::matmul::primitive_desc(desc, attr, eng_), eng_);
    } else {
      op->a.init(eng_, act_nhwc(d.n, d.c, d.h, d.w, dt::f32), act_nhwc(d.n, d.c, d.h, d.w, in_dt_));
      op->b.init(eng_, kcrs, plain_md({d.k, d.c, d.kh, d.kw}, tag::ohwi));
      dnnl::matmul::desc desc(plain_md({d.k, rc}, tag::ba, in_dt_), plain_md({rc, p}, tag::ab, in_dt_),
                              plain_md({d.k, p}, tag::ab));
      wire_matmul(*op, dnnl::matmul::primitive_desc(desc, attr, eng_), eng_);
    }
    return op;
  }
  void run_lowered_backward_weights(Op& op, const ConvDesc& d, bool transposed, const Tensor& x, const Tensor& dy,
                                    Tensor& dw, Tensor* db) {
    op.a.in(x.data, strm_);
    op.c.in(dy.data, strm_);
    op.b.out(dw.data);
    strm_.wait();  // im2col reads the reordered x on the host
    const int64_t ci = op.chunk;
    ConvDesc chunk = d;
    chunk.n = ci;
    const size_t elem = memory::data_type_size(in_dt_);
    const size_t x_chunk = static_cast<size_t>(ci * d.h * d.w * d.c) * elem;
    const size_t dy_chunk = static_cast<size_t>(ci * d.oh() * d.ow() * d.k) * elem;
    void* cols = scratch(static_cast<size_t>(ci * d.oh() * d.ow() * d.kh * d.kw * d.c) * elem);
    auto* out = static_cast<float*>(op.b.prim.get_data_handle());
    std::fill(out, out + d.k * d.kh * d.kw * d.c, 0.0f);
    // The columns are the matmul's B untransposed and its A transposed; dy is the other one.
    memory& cols_arg = transposed ? op.mm_a : op.mm_b;
    memory& dy_arg = transposed ? op.mm_b : op.mm_a;
    cols_arg.set_data_handle(cols);
    op.mm_c.set_data_handle(out);
    for (int64_t i = 0; i < d.n / ci; ++i) {
      const void* xi = at(op.a.prim, static_cast<size_t>(i) * x_chunk);
      if (transposed) cpu::im2col_t_nchw(chunk, xi, elem, cols, op.threads);
      else cpu::im2col_nhwc(chunk, xi, elem, cols, op.threads);
      dy_arg.set_data_handle(at(op.c.prim, static_cast<size_t>(i) * dy_chunk));
      op.prim.execute(strm_, op.args);
      strm_.wait();
    }
    op.b.finish(strm_);
    strm_.wait();
    if (db) column_sums(dy.data, d.n * d.oh() * d.ow(), d.k, db->data);
  }

  enum class ConvLayout { auto_, plain, blocked, nhwc };
  enum class ConvBackward { auto_, direct, gemm, amx, span };
  ConvBackward conv_backward_ = ConvBackward::auto_;
  std::string conv_backward_name_;  // the MNISTCTL_DNNL_CONV_BACKWARD override, empty for the default
  bool single_channel_onednn_ = false;  // MNISTCTL_DNNL_SINGLE_CHANNEL=onednn
  cpu::SingleChannelForm single_channel_form_ = cpu::SingleChannelForm::best;  // =blocks: the block form
  bool amx_ = false;  // oneDNN's kernels use AMX here (see backward_path)
  Buffer scratch_;  // see scratch()
  dt in_dt_;  // inputs of convolutions and inner products: f32, or bf16 (see the top)
  ConvLayout conv_layout_ = ConvLayout::auto_;
  std::string layout_name_;  // the MNISTCTL_DNNL_LAYOUT override, empty for the default
  dnnl::engine eng_;
  dnnl::stream strm_;
  std::unordered_map<OpKey, std::unique_ptr<Op>, OpKeyHash> cache_;
  std::vector<double> row_loss_;
  std::vector<uint8_t> row_hit_;
};

}  // namespace

std::string dnnl_precision_gap(Precision precision) {
  if (precision != Precision::bf16) return "";
  // oneDNN's effective ISA is the CPU's, capped by DNNL_MAX_CPU_ISA (the tests set that to
  // play a CPU without BF16).
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  if (isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx) return "";
  return fmt::format("this CPU lacks AVX-512 BF16 (avx512_bf16) and AMX (oneDNN's ISA here: {}), and oneDNN "
                     "would emulate BF16 several times slower than FP32",
                     isa_name(isa));
}

std::unique_ptr<Backend> make_dnnl_backend(int threads, Precision precision) {
  if (std::string gap = dnnl_precision_gap(precision); !gap.empty())
    throw UsageError(fmt::format("--ctx cpu: precision bf16: {}", gap));
  try {
    return std::make_unique<DnnlBackend>(threads, precision);
  } catch (const dnnl::error& e) {
    throw RuntimeError(fmt::format("--ctx cpu: oneDNN cannot start: {}", e.what()));
  }
}

}  // namespace mnistctl
