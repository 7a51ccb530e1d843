// Evaluation metrics computed on the host from class probabilities: accuracy, mean
// cross-entropy, top-k accuracy, per-class accuracy and the confusion matrix.
// (Training's running loss and accuracy stay on the device: backend.h MetricSlot.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl {

struct EvalResult {
  int64_t count = 0;
  int classes = 0;
  int top_k = 5;
  double accuracy = 0, mean_xent = 0, top_k_accuracy = 0;
  std::vector<double> per_class_accuracy;  // classes
  std::vector<int64_t> per_class_count;    // classes
  std::vector<int64_t> confusion;          // classes x classes: [true][predicted]
};

class EvalAccumulator {
 public:
  EvalAccumulator(int classes, int top_k);
  // probs: n x classes (rows sum to 1); labels: n class indices.
  void add(const float* probs, const uint8_t* labels, int64_t n);
  EvalResult result() const;

 private:
  int classes_, top_k_;
  int64_t count_ = 0, correct_ = 0, topk_correct_ = 0;
  double xent_ = 0;
  std::vector<int64_t> confusion_;
};

// Argmax with the first maximum winning (as the backends count accuracy).
int argmax(const float* row, int n);

// Where a result came from, printed with it.
struct EvalSource {
  std::string model, dataset, backend;
  double min_accuracy = -1;  // < 0: no gate
  std::vector<std::string> class_names;  // one per class (the dataset catalog's); may be empty
};

// class_names (optional): printed beside the class numbers when they are not the numbers
// themselves (Fashion-MNIST's "Ankle boot"), so a reader needs no lookup table.
std::string format_eval_text(const EvalResult& r, const std::vector<std::string>& class_names = {});
// One JSON object: the source fields, "passed" when a gate was given, then the metrics, and
// "class_names" when the source has them.
std::string format_eval_json(const EvalResult& r, const EvalSource& src);

}  // namespace mnistctl
