// StepGraphs (train/step_graphs.h), the trainer's step-graph bookkeeping, against a stub
// backend that records what it is asked: which steps run eagerly, which one is captured
// (with which scalars), which are replayed, and the one line said when graphs are not used
// or a capture fails. The GPU side (a real capture and replay) is test/gpu/test_gpu.cpp.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "train/step_graphs.h"

using namespace mnistctl;

namespace {

// Every numeric op throws: StepGraphs may only ask about graphs and capture.
class StubBackend final : public Backend {
 public:
  bool graphs = true;        // supports_graphs()
  bool capture_fails = false;
  std::vector<std::string> log;  // "capture first=..", "replay first=.."

  std::string name() const override { return "stub"; }
  bool supports_graphs() const override { return graphs; }
  std::unique_ptr<StepGraph> capture(const StepScalars& at, const std::function<void()>& step,
                                     std::string* why) override {
    log.push_back("capture first=" + std::to_string(at.first) + " step=" + std::to_string(at.step));
    step();  // the host side of the step runs under capture (the device side does not)
    if (capture_fails) {
      *why = "stub refuses";
      return nullptr;
    }
    struct Graph : StepGraph {
      StubBackend* be;
      explicit Graph(StubBackend* b) : be(b) {}
      void replay(const StepScalars& s) override {
        be->log.push_back("replay first=" + std::to_string(s.first) + " step=" + std::to_string(s.step));
      }
    };
    return std::make_unique<Graph>(this);
  }

  [[noreturn]] static void no() { throw std::logic_error("StepGraphs called a numeric op"); }
  Tensor empty(const Shape&) override { no(); }
  Buffer alloc_bytes(size_t) override { no(); }
  void fill(Tensor&, float) override { no(); }
  void upload(Tensor&, const float*) override { no(); }
  void download(const Tensor&, float*) override { no(); }
  void upload_bytes(Buffer&, const void*, size_t) override { no(); }
  void copy(const Tensor&, Tensor&) override { no(); }
  void gather_batch(const Buffer&, const Buffer&, int64_t, const Buffer&, int64_t, int64_t, Tensor&, Tensor&) override {
    no();
  }
  void fc_forward(const FcDesc&, const Tensor&, const Tensor&, const Tensor*, Tensor&) override { no(); }
  void fc_backward_data(const FcDesc&, const Tensor&, const Tensor&, Tensor&) override { no(); }
  void fc_backward_weights(const FcDesc&, const Tensor&, const Tensor&, Tensor&, Tensor*) override { no(); }
  void conv_forward(const ConvDesc&, const Tensor&, const Tensor&, const Tensor*, Tensor&) override { no(); }
  void conv_backward_data(const ConvDesc&, const Tensor&, const Tensor&, Tensor&) override { no(); }
  void conv_backward_weights(const ConvDesc&, const Tensor&, const Tensor&, Tensor&, Tensor*) override { no(); }
  Buffer pool_workspace(const PoolDesc&) override { no(); }
  void pool_forward(const PoolDesc&, const Tensor&, Tensor&, Buffer&) override { no(); }
  void pool_backward(const PoolDesc&, const Tensor&, const Tensor&, const Tensor&, const Buffer&, Tensor&) override {
    no();
  }
  void act_forward(ActType, const Tensor&, Tensor&) override { no(); }
  void act_backward(ActType, const Tensor&, const Tensor&, const Tensor&, Tensor&) override { no(); }
  void dropout_forward(float, uint64_t, uint64_t, const Tensor&, Tensor&, Tensor&) override { no(); }
  void mul(const Tensor&, const Tensor&, Tensor&) override { no(); }
  void softmax_xent_forward(const Tensor&, const Tensor&, Tensor&, Tensor*) override { no(); }
  void softmax_xent_backward(const Tensor&, const Tensor&, float, Tensor&) override { no(); }
  void sgd_update(Tensor&, const Tensor&, Tensor*, float, float, float) override { no(); }
  void adam_update(Tensor&, const Tensor&, Tensor&, Tensor&, float, float, float, float, float, int64_t) override {
    no();
  }
};

StepScalars at(int64_t first, uint64_t step) {
  StepScalars s;
  s.first = first;
  s.step = step;
  return s;
}

struct Rig {
  StubBackend be;
  std::vector<std::string> said;
  int eager = 0;  // host runs of the step function (eager steps and the captured one)
  std::unique_ptr<StepGraphs> graphs;
  Rig(bool wanted, bool data_parallel) {
    graphs = std::make_unique<StepGraphs>(be, wanted, data_parallel, [this](const std::string& l) { said.push_back(l); });
  }
  void run(StepGraphs::Kind kind, int64_t rows, bool full, const StepScalars& s) {
    graphs->run(kind, rows, full, s, [this] { ++eager; });
  }
};

}  // namespace

TEST_CASE("step graphs: the first full step runs eagerly, the second is captured, the rest replayed", "[graphs]") {
  Rig r(true, false);
  CHECK(r.said.empty());
  REQUIRE(r.graphs->enabled());
  using K = StepGraphs::Kind;
  r.run(K::train, 100, true, at(0, 0));      // warm-up: eager
  r.run(K::train, 100, true, at(100, 1));    // captured, then replayed
  r.run(K::train, 100, true, at(200, 2));    // replayed
  r.run(K::train, 50, false, at(300, 3));    // a smaller last batch: eager
  r.run(K::validation, 100, true, at(0, 0));    // its own warm-up
  r.run(K::validation, 100, true, at(100, 0));  // captured, replayed
  r.run(K::train, 100, true, at(0, 4));      // replayed
  CHECK(r.eager == 5);  // warm-ups (2), captures (2, host side only), the last batch (1)
  const std::vector<std::string> want = {"capture first=100 step=1", "replay first=100 step=1",
                                         "replay first=200 step=2",  "capture first=100 step=0",
                                         "replay first=100 step=0",  "replay first=0 step=4"};
  CHECK(r.be.log == want);
  REQUIRE(r.said.size() == 1);  // announced once
  CHECK(r.said[0] == "train.cuda_graphs: full batches of 100 rows are replayed from CUDA graphs");
}

TEST_CASE("step graphs: off, unsupported or under data parallelism every step runs eagerly", "[graphs]") {
  using K = StepGraphs::Kind;
  for (int c = 0; c < 3; ++c) {
    const bool wanted = c != 0;
    const bool data_parallel = c == 2;
    StubBackend be;
    be.graphs = c != 1;
    std::vector<std::string> said;
    StepGraphs g(be, wanted, data_parallel, [&](const std::string& l) { said.push_back(l); });
    int eager = 0;
    for (int64_t i = 0; i < 4; ++i) g.run(K::train, 100, true, at(i * 100, uint64_t(i)), [&] { ++eager; });
    INFO("case " << c);
    CHECK_FALSE(g.enabled());
    CHECK(eager == 4);
    CHECK(be.log.empty());
    if (c == 0) CHECK(said.empty());
    if (c == 1) CHECK(said == std::vector<std::string>{"train.cuda_graphs: stub has no CUDA graphs; every step runs eagerly"});
    if (c == 2)
      CHECK(said == std::vector<std::string>{
                        "train.cuda_graphs: not used under data parallelism (mpirun); every step runs eagerly"});
  }
}

TEST_CASE("step graphs: a failed capture warns once, runs that step eagerly and turns graphs off", "[graphs]") {
  Rig r(true, false);
  r.be.capture_fails = true;
  using K = StepGraphs::Kind;
  for (int64_t i = 0; i < 4; ++i) r.run(K::train, 100, true, at(i * 100, uint64_t(i)));
  // warm-up, the capture's host run plus the same step again eagerly, then two eager steps
  CHECK(r.eager == 5);
  CHECK(r.be.log == std::vector<std::string>{"capture first=100 step=1"});
  REQUIRE(r.said.size() == 1);
  CHECK(r.said[0] ==
        "warning: train.cuda_graphs: capturing the training step failed (stub refuses); every step runs eagerly");
  CHECK_FALSE(r.graphs->enabled());
}
