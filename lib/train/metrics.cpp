#include "train/metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/json.h"

namespace mnistctl {

int argmax(const float* row, int n) {
  int best = 0;
  for (int j = 1; j < n; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

EvalAccumulator::EvalAccumulator(int classes, int top_k)
    : classes_(classes), top_k_(std::min(top_k, classes)),
      confusion_(static_cast<size_t>(classes * classes), 0) {}

void EvalAccumulator::add(const float* probs, const uint8_t* labels, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = probs + i * classes_;
    int label = labels[i];
    int pred = argmax(row, classes_);
    ++confusion_[static_cast<size_t>(label * classes_ + pred)];
    if (pred == label) ++correct_;
    // Top-k: the label is among the k largest, ties counted against it: a confident model's
    // probabilities round to 0 for most classes, and an all-zero tail would otherwise count
    // the true class among the top k whatever its real rank.
    int above = 0;
    for (int j = 0; j < classes_; ++j)
      if (j != label && row[j] >= row[label]) ++above;
    if (above < top_k_) ++topk_correct_;
    xent_ -= std::log(std::max(static_cast<double>(row[label]), 1e-12));
    ++count_;
  }
}

EvalResult EvalAccumulator::result() const {
  EvalResult r;
  r.count = count_;
  r.classes = classes_;
  r.top_k = top_k_;
  if (count_ == 0) return r;
  r.accuracy = static_cast<double>(correct_) / count_;
  r.top_k_accuracy = static_cast<double>(topk_correct_) / count_;
  r.mean_xent = xent_ / count_;
  r.confusion = confusion_;
  for (int c = 0; c < classes_; ++c) {
    int64_t total = 0;
    for (int p = 0; p < classes_; ++p) total += confusion_[static_cast<size_t>(c * classes_ + p)];
    r.per_class_count.push_back(total);
    r.per_class_accuracy.push_back(
        total ? static_cast<double>(confusion_[static_cast<size_t>(c * classes_ + c)]) / total : 0.0);
  }
  return r;
}

std::string format_eval_text(const EvalResult& r, const std::vector<std::string>& class_names) {
  bool named = false;  // names that say more than the class number
  for (size_t c = 0; c < class_names.size(); ++c)
    if (class_names[c] != std::to_string(c)) named = true;
  std::string s = fmt::format("images: {}\naccuracy: {:.4f}\ntop-{} accuracy: {:.4f}\nmean cross-entropy: {:.4f}\n",
                              r.count, r.accuracy, r.top_k, r.top_k_accuracy, r.mean_xent);
  s += "per-class accuracy:\n";
  for (int c = 0; c < r.classes; ++c) {
    std::string label = std::to_string(c);
    if (named && c < static_cast<int>(class_names.size())) label += " " + class_names[static_cast<size_t>(c)];
    s += fmt::format("  {}: {:.4f} ({} images)\n", label, r.per_class_accuracy[c], r.per_class_count[c]);
  }
  s += "confusion matrix (rows: true class, columns: predicted):\n      ";
  for (int p = 0; p < r.classes; ++p) s += fmt::format("{:>6}", p);
  s += "\n";
  for (int c = 0; c < r.classes; ++c) {
    s += fmt::format("  {:>2}: ", c);
    for (int p = 0; p < r.classes; ++p) s += fmt::format("{:>6}", r.confusion[static_cast<size_t>(c * r.classes + p)]);
    if (named && c < static_cast<int>(class_names.size())) s += "  " + class_names[static_cast<size_t>(c)];
    s += "\n";
  }
  return s;
}


std::string format_eval_json(const EvalResult& r, const EvalSource& src) {
  std::string gate;
  if (src.min_accuracy >= 0)
    gate = fmt::format("\"min_accuracy\":{},\"passed\":{},", src.min_accuracy,
                       r.accuracy >= src.min_accuracy ? "true" : "false");
  std::string s = fmt::format(
      "{{\"model\":{},\"dataset\":{},\"backend\":{},{}\"images\":{},\"accuracy\":{:.6f},\"top_k\":{},\"top_k_accuracy\":{:.6f},"
      "\"mean_cross_entropy\":{:.6f},\"per_class_accuracy\":[",
      json_string(src.model), json_string(src.dataset), json_string(src.backend), gate, r.count, r.accuracy, r.top_k, r.top_k_accuracy, r.mean_xent);
  for (int c = 0; c < r.classes; ++c) s += fmt::format("{}{:.6f}", c ? "," : "", r.per_class_accuracy[c]);
  s += "],\"confusion_matrix\":[";
  for (int c = 0; c < r.classes; ++c) {
    s += c ? ",[" : "[";
    for (int p = 0; p < r.classes; ++p)
      s += fmt::format("{}{}", p ? "," : "", r.confusion[static_cast<size_t>(c * r.classes + p)]);
    s += "]";
  }
  s += "]";
  if (!src.class_names.empty()) {
    s += ",\"class_names\":[";
    for (size_t c = 0; c < src.class_names.size(); ++c) s += (c ? "," : "") + json_string(src.class_names[c]);
    s += "]";
  }
  return s + "}";
}

}  // namespace mnistctl
