// Evaluation metrics on hand-made probabilities whose answers follow from their definitions.
#include <cmath>

#include <catch2/catch.hpp>

#include "train/metrics.h"

using namespace mnistctl;

TEST_CASE("accuracy and top-k and cross-entropy and per-class accuracy and the confusion matrix") {
  // 3 classes, 4 images.
  const float probs[] = {0.7f, 0.2f, 0.1f,   // label 0, predicted 0
                         0.1f, 0.3f, 0.6f,   // label 1, predicted 2 (label is 2nd)
                         0.2f, 0.5f, 0.3f,   // label 2, predicted 1 (label is 2nd)
                         0.1f, 0.1f, 0.8f};  // label 2, predicted 2
  const uint8_t labels[] = {0, 1, 2, 2};
  EvalAccumulator acc(3, 2);
  acc.add(probs, labels, 2);
  acc.add(probs + 6, labels + 2, 2);  // in two batches
  EvalResult r = acc.result();
  CHECK(r.count == 4);
  CHECK(r.accuracy == Approx(0.5));
  CHECK(r.top_k == 2);
  CHECK(r.top_k_accuracy == Approx(1.0));
  CHECK(r.mean_xent == Approx(-(std::log(0.7) + std::log(0.3) + std::log(0.3) + std::log(0.8)) / 4).epsilon(1e-6));
  CHECK(r.per_class_accuracy == std::vector<double>{1.0, 0.0, 0.5});
  CHECK(r.confusion == std::vector<int64_t>{1, 0, 0, 0, 0, 1, 0, 1, 1});
  std::string json = format_eval_json(r, EvalSource{"m\"1", "mnist", "ref", 0.6});
  CHECK(json.find("\"model\":\"m\\\"1\",\"dataset\":\"mnist\",\"backend\":\"ref\",") != std::string::npos);
  CHECK(json.find("\"passed\":false") != std::string::npos);  // 0.5 < 0.6
  CHECK(format_eval_json(r, EvalSource{"m", "mnist", "ref"}).find("passed") == std::string::npos);
  CHECK(json.find("\"confusion_matrix\":[[1,0,0],[0,0,1],[0,1,1]]") != std::string::npos);
  CHECK(format_eval_text(r).find("accuracy: 0.5000") != std::string::npos);
}

TEST_CASE("eval output names the classes when the dataset has names") {
  const float probs[] = {0.7f, 0.2f, 0.1f, 0.1f, 0.3f, 0.6f};
  const uint8_t labels[] = {0, 1};
  EvalAccumulator acc(3, 1);
  acc.add(probs, labels, 2);
  EvalResult r = acc.result();
  const std::vector<std::string> named = {"T-shirt/top", "Trouser", "Pull\"over"};
  std::string text = format_eval_text(r, named);
  CHECK(text.find("  0 T-shirt/top: 1.0000 (1 images)\n") != std::string::npos);
  CHECK(text.find("  1 Trouser: 0.0000 (1 images)\n") != std::string::npos);
  CHECK(text.find("Trouser\n") != std::string::npos);  // the confusion matrix's row is named too
  // Digit classes are their own names: nothing is added.
  std::string digits = format_eval_text(r, {"0", "1", "2"});
  CHECK(digits.find("  1: 0.0000 (1 images)\n") != std::string::npos);
  CHECK(digits == format_eval_text(r));
  std::string json = format_eval_json(r, EvalSource{"m", "fashion-mnist", "ref", -1, named});
  CHECK(json.find(",\"class_names\":[\"T-shirt/top\",\"Trouser\",\"Pull\\\"over\"]}") != std::string::npos);
  CHECK(format_eval_json(r, EvalSource{"m", "mnist", "ref"}).find("class_names") == std::string::npos);
}

TEST_CASE("top-k counts ties against the true class, so probabilities rounded to 0 do not make hits") {
  // A confident model: the true class (3) and four others all rounded to 0.
  const float probs[] = {1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
                         0.5f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f};  // label 1 ties with class 0
  const uint8_t labels[] = {3, 1};
  EvalAccumulator top5(6, 5);
  top5.add(probs, labels, 1);
  CHECK(top5.result().top_k_accuracy == 0.0);  // 5 classes at or above it: not in the top 5
  EvalAccumulator top2(6, 2), top1(6, 1);
  top2.add(probs + 6, labels + 1, 1);
  top1.add(probs + 6, labels + 1, 1);
  CHECK(top2.result().top_k_accuracy == 1.0);
  CHECK(top1.result().top_k_accuracy == 0.0);  // as accuracy: the first of equal maxima is class 0
  CHECK(top1.result().accuracy == 0.0);
}

TEST_CASE("argmax takes the first of equal maxima") {
  const float row[] = {0.1f, 0.4f, 0.4f};
  CHECK(argmax(row, 3) == 1);
}
