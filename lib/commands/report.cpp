// `mnistctl report RUN`: one self-contained HTML page about a run (lib/report/report.h has
// the panels). This file does the parts that need a backend: it loads the run's checkpoint
// (best.ckpt when there is one, else last.ckpt) and runs it over the test set for the
// confusion matrix, per-class accuracy and the misclassified images.
//
// Output: RUN/report.html by default, or --output FILE. A file already there is replaced
// only when it is a previous report (it carries kReportMarker); any other file is refused
// (exit 2), so a typo in --output never destroys a user's file. Written atomically.
// A run without a checkpoint yet, or whose test set is not in the data folder, still gets
// its report: those panels say why they are empty (and a warning goes to stderr).
#include <chrono>
#include <ctime>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "commands/commands.h"
#include "commands/output_check.h"
#include "commands/open_model.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "report/report.h"
#include "report/run_reader.h"
#include "train/metrics.h"

namespace mnistctl {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMisclassifiedShown = 24;

// Refuses an --output that would destroy something that is not a previous report.
void check_output(const std::string& out) {
  std::error_code ec;
  const fs::path p(out);
  if (fs::is_directory(p, ec)) throw UsageError(fmt::format("{}: is a folder; --output takes a file name", out));
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  if (!fs::is_directory(parent, ec))
    throw RuntimeError(fmt::format("{}: cannot write: the folder {} does not exist", out, parent.string()));
  if (!fs::exists(p, ec) || !fs::is_regular_file(p, ec)) return;  // new, or a device such as /dev/null
  if (read_prefix(out, 4096).find(kReportMarker) == std::string::npos)
    throw UsageError(fmt::format("{}: exists and is not a mnistctl report; it is left alone (give another --output, "
                                 "or remove the file first)",
                                 out));
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace

int run_report(const ReportOptions& o) {
  std::string run_dir = o.run_dir;
  while (run_dir.size() > 1 && run_dir.back() == '/') run_dir.pop_back();
  const RunData run = read_run(run_dir);
  const std::string out = o.output.empty() ? run_dir + "/report.html" : o.output;
  check_output(out);
  // Another run's own files (its report.html included) are that run's, not this one's to replace.
  {
    std::error_code ec;
    const fs::path target(through_links(out));  // a symbolic link is written through
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    if (!fs::equivalent(parent, run_dir, ec)) check_output_is_not_input(out, {}, "", "");
  }

  ReportInputs in;
  in.run = &run;
  in.tool_version = o.tool_version;
  in.generated_at = utc_now();
  const std::string dataset = run.config ? run.config->data.dataset : "";
  if (!dataset.empty()) {
    try {
      in.class_names = find_dataset(dataset).class_names;
    } catch (const Error&) {
      // An unknown dataset name shows as class numbers; config.yaml's problem is in the notes.
    }
  }

  TestResults test;
  if (run.checkpoint.empty()) {
    in.test_missing = "No checkpoint yet: the run has not finished its first epoch (nor been interrupted), so there "
                      "is no model to evaluate on the test set. Run the report again later.";
  } else {
    OpenModel om = open_model(o.run, run.checkpoint);
    const Model& m = om.model;
    std::optional<Dataset> ts;
    try {
      ts = load_split(o.run.data_dir, m.config.data.dataset, Split::test);
    } catch (const Error& e) {
      in.test_missing = fmt::format("The test set is not available, so these panels are empty: {}", e.what());
      log_line("mnistctl report: warning: " + in.test_missing);
    }
    if (ts) {
      if (m.net->num_classes() != ts->num_classes)
        throw UsageError(fmt::format("{}: the network has {} outputs, {} has {} classes", m.path, m.net->num_classes(),
                                     m.config.data.dataset, ts->num_classes));
      if (in.class_names.empty()) in.class_names = find_dataset(m.config.data.dataset).class_names;
      const int classes = static_cast<int>(m.net->num_classes());
      EvalAccumulator acc(classes, std::min(5, classes));
      WorstCollector worst(kMisclassifiedShown);
      const std::vector<uint8_t> pixels = ts->images;  // inference takes the images over
      const auto t0 = std::chrono::steady_clock::now();
      run_inference(*m.net, *om.backend, std::move(ts->images), ts->count, ts->sample_size(), kInferenceBatch,
                    [&](int64_t first, int64_t n, const float* probs) {
                      acc.add(probs, ts->labels.data() + first, n);
                      for (int64_t i = 0; i < n; ++i)
                        worst.add(first + i, ts->labels[static_cast<size_t>(first + i)], probs + i * classes, classes);
                    });
      test.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      test.eval = acc.result();
      test.worst = worst.result(pixels, ts->sample_size());
      test.rows = static_cast<int>(ts->rows);
      test.cols = static_cast<int>(ts->cols);
      test.checkpoint = run.checkpoint;
      test.checkpoint_kind = run.checkpoint_kind;
      test.backend = om.backend->name();
      in.test = &test;
    }
  }

  const std::string html = render_report(in);
  write_file_atomic(out, html);
  out_line(fmt::format("report: {} ({} KiB; {}{})", out, (html.size() + 1023) / 1024, run.state(),
                       in.test ? fmt::format(", test accuracy {:.4f} with {}", test.eval.accuracy, run.checkpoint) : ""));
  return kExitOk;
}

}  // namespace mnistctl
