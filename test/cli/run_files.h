// What end-to-end tests write for a run and read back from it: the small convolutional
// recipe the resume tests share, numbers from JSON output, and a checkpoint's weights.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "test_util.h"
#include "train/checkpoint.h"

namespace mnistctl::test {

// A small convolutional net with momentum (optimizer state in the checkpoint), dropout (masks
// from the step counter) and batch 64 (a smaller last batch): everything resume must carry
// over. Convolutions also make each batch slow enough for a signal to arrive mid-epoch.
// Written as <dir>/conv-dropout.yaml; returns its path.
inline std::string write_conv_dropout_config(const std::string& dir, int filters = 16, const std::string& dropout = "0.2",
                                             int log_interval = 10) {
  const std::string cfg = dir + "/conv-dropout.yaml";
  std::ofstream(cfg) << "name: conv-dropout\nnetwork:\n  layers:\n"
                        "    - {type: convolution, kernel: 5, num_filter: " << filters << "}\n"
                        "    - {type: activation, act_type: relu}\n"
                        "    - {type: pooling, kernel: 2, stride: 2}\n    - {type: flatten}\n"
                        "    - {type: fully_connected, num_hidden: 64}\n    - {type: activation, act_type: relu}\n"
                        "    - {type: dropout, p: " << dropout << "}\n    - {type: fully_connected, num_hidden: 10}\n"
                        "    - {type: softmax_output}\ninit: {type: xavier}\n"
                        "train: {batch_size: 64, momentum: 0.9, log_interval: " << log_interval << "}\n";
  return cfg;
}

// The default recipe in the fresh scratch folder `name`.
inline std::string interruptible_config(const std::string& name) { return write_conv_dropout_config(scratch_dir(name)); }

// The number after "key": in one line of JSON.
inline double json_number(const std::string& json, const std::string& key) {
  std::smatch m;
  REQUIRE(std::regex_search(json, m, std::regex("\"" + key + "\":([0-9.eE+-]+)")));
  return std::stod(m[1]);
}

// Parameters and optimizer state of a checkpoint, bit for bit.
inline std::vector<NamedTensor> weights(const std::string& path) {
  Checkpoint c = load_checkpoint(path);
  std::vector<NamedTensor> w;
  for (auto& t : c.tensors)
    if (t.name.rfind("param/", 0) == 0 || t.name.rfind("optim/", 0) == 0) w.push_back(t);
  return w;
}

// The two checkpoints hold the same parameters and optimizer state, exactly.
inline void require_same_weights(const std::string& a, const std::string& b) {
  auto wa = weights(a), wb = weights(b);
  REQUIRE(wa.size() == wb.size());
  REQUIRE(!wa.empty());
  for (size_t i = 0; i < wa.size(); ++i) {
    INFO(wa[i].name);
    CHECK(wa[i].name == wb[i].name);
    CHECK(wa[i].data == wb[i].data);  // exact, not approximately
  }
}

// Where a run is, as (epochs done, batches into the next): a checkpoint's position, and the
// furthest progress in train's output ("Epoch[E] Batch[B/" lines and epoch summaries), so a
// test can check that a checkpoint written at a stop is at or past what was printed.
using RunPosition = std::pair<int64_t, int64_t>;
inline RunPosition checkpoint_position(const std::string& path) {
  Checkpoint c = load_checkpoint(path);
  return {c.meta_int("epoch", ""), c.meta_int("batch", "")};
}
inline RunPosition printed_position(const std::string& out) {
  RunPosition printed{0, 0};
  const std::regex progress(R"(Epoch\[(\d+)\] (Batch\[(\d+)/|Train-accuracy))");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), progress); it != std::sregex_iterator(); ++it) {
    const int64_t e = std::stoll((*it)[1]);
    printed = std::max(printed, (*it)[3].matched ? RunPosition{e - 1, std::stoll((*it)[3])} : RunPosition{e, 0});
  }
  return printed;
}

}  // namespace mnistctl::test
