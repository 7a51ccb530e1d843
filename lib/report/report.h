// `mnistctl report`'s page: one self-contained HTML file built from a run folder (run_reader.h)
// and, when there is a checkpoint, the model's predictions on the test set.
//
// Self-contained means: inline <style>, inline SVG charts (svg.h), digits as PNG data URIs,
// no <script>, and a Content-Security-Policy (default-src 'none'; img-src data:) so that a
// browser fetches nothing even if some text slipped through. Every piece of text from the
// run (config, names, notes) is HTML-escaped.
//
// Panels: summary cards, notes (what the reader skipped), training curves (loss, accuracy,
// learning rate, images/s; training per logged batch on a continuous epoch axis, validation
// per epoch), confusion matrix heat map, per-class accuracy, the most confidently
// misclassified test images, per-epoch timings, the run's details (dataset, backend,
// checkpoint, versions), and config.yaml. A panel that needs a checkpoint says why it is
// empty instead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "report/run_reader.h"
#include "train/metrics.h"
#include "train/run_folder.h"

namespace mnistctl {

struct Misclassified {
  int64_t index = 0;      // in the test set
  int truth = 0, predicted = 0;
  float confidence = 0;   // the predicted class's probability
  std::vector<uint8_t> pixels;
};

// Keeps the `keep` most confident wrong predictions seen (ties: the lower index first).
class WorstCollector {
 public:
  explicit WorstCollector(size_t keep) : keep_(keep) {}
  void add(int64_t index, int truth, const float* probs, int classes);
  // Most confident first, with their pixels copied from `images` (sample_size bytes each).
  std::vector<Misclassified> result(const std::vector<uint8_t>& images, int64_t sample_size) const;

 private:
  size_t keep_;
  std::vector<Misclassified> items_;  // a min-heap on confidence while collecting
};

struct TestResults {
  EvalResult eval;
  std::vector<Misclassified> worst;
  int rows = 28, cols = 28;    // image size
  std::string checkpoint;      // the file used
  std::string checkpoint_kind; // "best" | "last"
  std::string backend;         // where inference ran
  double seconds = 0;          // inference time
};

struct ReportInputs {
  const RunData* run = nullptr;
  const TestResults* test = nullptr;      // null: test_missing says why
  std::string test_missing;
  std::vector<std::string> class_names;   // empty: 0..classes-1
  std::string tool_version;               // e.g. "mnistctl 0.1.0"
  std::string generated_at;               // UTC timestamp text
};

std::string render_report(const ReportInputs& in);

// render_report puts kReportMarker (train/run_folder.h: the run folder tells its report by it
// too) in every page, so `report --output` can tell a previous report (which it may replace)
// from any other file (which it must not).

// HTML text escaping (& < > " ').
std::string html_escape(const std::string& s);

}  // namespace mnistctl
