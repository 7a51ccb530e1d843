#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/format.h>

#include "report/image_uri.h"
#include "report/svg.h"
#include "train/metrics.h"

namespace mnistctl {

namespace {

// Most confident first; equal confidence: lower index first.
bool more_confident(const Misclassified& a, const Misclassified& b) {
  return a.confidence != b.confidence ? a.confidence > b.confidence : a.index < b.index;
}

const char* kStyle = R"(
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#111;font-size:14px}
main{max-width:1200px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:0 0 10px}
.sub{color:#555;margin:0 0 14px}
section{background:#fff;border:1px solid #dde;border-radius:6px;padding:14px 16px;margin:14px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px;background:none;border:none;padding:0}
.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:10px 14px;min-width:160px;flex:1}
.card .k{color:#555;font-size:12px}.card .v{font-size:22px;font-weight:bold;margin:2px 0}.card .d{color:#666;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:14px}
.grid svg{border:1px solid #eee;flex:none}
.missing{color:#8a5300;background:#fff8e6;border:1px solid #f0d9a8;border-radius:4px;padding:10px}
.notes li{color:#8a5300}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{color:#444;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f9;border:1px solid #eee;padding:10px;overflow:auto;font-size:12px;margin:0}
.digits{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:124px;text-align:center;font-size:12px;border:1px solid #eee;border-radius:4px;padding:6px 2px}
figure img{width:84px;height:84px;image-rendering:pixelated;display:block;margin:0 auto 4px}
figcaption .t{color:#1a7f37}figcaption .p{color:#c62828;font-weight:bold}figcaption .c{color:#666}
)";

bool finite(double v) { return std::isfinite(v); }

std::string card(const std::string& key, const std::string& value, const std::string& detail) {
  return fmt::format("<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div><div class=\"d\">{}</div></div>\n",
                     html_escape(key), html_escape(value), html_escape(detail));
}

std::string duration(double s) {
  if (!finite(s)) return "-";
  if (s < 120) return fmt::format("{:.1f} s", s);
  if (s < 7200) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.2f} h", s / 3600);
}

std::string fixed(double v, int d) { return finite(v) ? fmt::format("{:.{}f}", v, d) : "-"; }

// Points of a per-epoch field, leaving out epochs where it is absent.
svg::Series epoch_series(const RunData& run, const std::string& name, double EpochRecord::*field, const std::string& color) {
  svg::Series s;
  s.name = name;
  s.color = color;
  s.markers = true;
  s.stroke_width = 2;
  for (const auto& e : run.epochs)
    if (finite(e.*field)) s.x.push_back(static_cast<double>(e.epoch)), s.y.push_back(e.*field);
  return s;
}

svg::Series batch_series(const RunData& run, const std::string& name, double BatchRecord::*field, const std::string& color) {
  svg::Series s;
  s.name = name;
  s.color = color;
  s.stroke_width = 1.2;
  for (const auto& b : run.batches)
    if (finite(b.*field)) s.x.push_back(run.batch_x(b)), s.y.push_back(b.*field);
  return s;
}

svg::LineChart epoch_chart(const RunData& run, const std::string& title, const std::string& y_label) {
  svg::LineChart c;
  c.title = title;
  c.x_label = "epoch";
  c.y_label = y_label;
  c.integer_x_ticks = true;
  const int64_t done = run.epochs.empty() ? 0 : run.epochs.back().epoch;
  int64_t last_batch_epoch = run.batches.empty() ? 0 : run.batches.back().epoch;
  c.x_lo = 0;
  c.x_hi = static_cast<double>(std::max({run.planned_epochs, done, last_batch_epoch, int64_t(1)}));
  return c;
}

void drop_empty(svg::LineChart& c) {
  c.series.erase(std::remove_if(c.series.begin(), c.series.end(), [](const svg::Series& s) { return s.x.empty(); }),
                 c.series.end());
}

std::string curves(const RunData& run) {
  const char* kBatch = "#9ecae1";
  const char* kTrain = "#1f77b4";
  const char* kVal = "#d62728";
  std::string o;
  {
    auto c = epoch_chart(run, "Loss (cross-entropy)", "mean loss");
    c.y_include_zero = true;
    c.series = {batch_series(run, "train, per logged batch", &BatchRecord::loss, kBatch),
                epoch_series(run, "train, epoch", &EpochRecord::loss, kTrain),
                epoch_series(run, "validation", &EpochRecord::val_loss, kVal)};
    drop_empty(c);
    o += svg::line_chart(c);
  }
  {
    auto c = epoch_chart(run, "Accuracy", "accuracy");
    c.series = {batch_series(run, "train, per logged batch", &BatchRecord::train_accuracy, kBatch),
                epoch_series(run, "train, epoch", &EpochRecord::train_accuracy, kTrain),
                epoch_series(run, "validation", &EpochRecord::val_accuracy, kVal)};
    drop_empty(c);
    o += svg::line_chart(c);
  }
  {
    // The rate of epoch k holds from k-1 to k: a step line.
    auto c = epoch_chart(run, "Learning rate", "learning rate");
    c.y_include_zero = true;
    svg::Series s;
    s.name = "learning rate (per epoch)";
    s.color = "#2ca02c";
    s.stroke_width = 2;
    s.steps = true;
    double last = NAN;
    int64_t last_epoch = 0;
    for (const auto& e : run.epochs)
      if (finite(e.lr)) {
        s.x.push_back(static_cast<double>(e.epoch - 1));
        s.y.push_back(e.lr);
        last = e.lr;
        last_epoch = e.epoch;
      }
    if (finite(last)) s.x.push_back(static_cast<double>(last_epoch)), s.y.push_back(last);
    // Headroom above the highest rate, so a constant rate is not drawn on the frame.
    double top = 0;
    for (double v : s.y) top = std::max(top, v);
    if (top > 0) c.y_lo = 0, c.y_hi = top * 1.15;
    c.series = {s};
    drop_empty(c);
    o += svg::line_chart(c);
  }
  {
    auto c = epoch_chart(run, "Training speed", "images / s");
    c.y_include_zero = true;
    c.series = {batch_series(run, "per logged interval", &BatchRecord::images_per_s, kBatch),
                epoch_series(run, "epoch mean", &EpochRecord::images_per_s, kTrain)};
    drop_empty(c);
    o += svg::line_chart(c);
  }
  return o;
}

std::string class_name(const ReportInputs& in, int k) {
  if (k >= 0 && static_cast<size_t>(k) < in.class_names.size()) return in.class_names[static_cast<size_t>(k)];
  return std::to_string(k);
}

std::string test_panels(const ReportInputs& in) {
  const TestResults& t = *in.test;
  const EvalResult& r = t.eval;
  std::string o;
  o += fmt::format(
      "<p class=\"sub\">Checkpoint <b>{}</b> ({}), {} test images, test accuracy <b>{:.4f}</b>, top-{} {:.4f}, mean "
      "cross-entropy {:.4f}; inference on {} in {}.</p>\n",
      html_escape(t.checkpoint), t.checkpoint_kind == "best" ? "the best epoch by validation accuracy" : "the latest",
      r.count, r.accuracy, r.top_k, r.top_k_accuracy, r.mean_xent, html_escape(t.backend), duration(t.seconds));
  svg::HeatMap h;
  h.title = "Confusion matrix (test set)";
  h.row_label = "true class";
  h.col_label = "predicted class";
  for (int k = 0; k < r.classes; ++k) h.row_names.push_back(class_name(in, k)), h.col_names.push_back(class_name(in, k));
  h.counts = r.confusion;
  svg::BarChart b;
  b.title = "Per-class accuracy (test set)";
  b.x_label = "accuracy";
  b.y_label = "class";
  b.color = "#4c78a8";
  b.height = std::max(320, 60 + 44 * r.classes);
  b.width = 460;  // beside the heat map in a 1200px page, even with Fashion-MNIST's long names
  for (int k = 0; k < r.classes; ++k) {
    b.labels.push_back(class_name(in, k));
    b.values.push_back(r.per_class_accuracy[static_cast<size_t>(k)]);
    const int64_t n = r.per_class_count[static_cast<size_t>(k)];
    b.annotations.push_back(fmt::format("{:.3f}, n={}", r.per_class_accuracy[static_cast<size_t>(k)], n));
  }
  // Zoom in where the classes actually are (0.9-1.0 for a good model) but never hide a bar:
  // the axis starts at least 0.02 below the worst class, so that its bar shows (0.802 on an
  // axis from 0.8 was an empty bar).
  double worst = 1;
  for (double v : b.values) worst = std::min(worst, v);
  b.v_lo = worst > 0.8 ? std::floor((worst - 0.02) * 10) / 10 : 0;
  b.v_hi = 1;
  o += "<div class=\"grid\">\n" + svg::heat_map(h) + svg::bar_chart(b) + "</div>\n";
  return o;
}

std::string misclassified_panel(const ReportInputs& in) {
  const TestResults& t = *in.test;
  if (t.worst.empty()) return "<p>No test image is misclassified.</p>\n";
  std::string o = fmt::format(
      "<p class=\"sub\">The {} wrong predictions the model was surest of, most confident first. Under each image: "
      "<span style=\"color:#1a7f37\">the true class</span>, <span style=\"color:#c62828\">&rarr; the predicted "
      "class</span>, the model's probability for it and the image's index in the test set.</p>\n<div class=\"digits\">\n",
      t.worst.size());
  for (const auto& m : t.worst) {
    o += fmt::format(
        "<figure title=\"test image #{0}: true {2}, predicted {3} with probability {4:.3f}\"><img alt=\"test image {0}\" "
        "src=\"{1}\"><figcaption><span class=\"t\">true {2}</span><br><span class=\"p\">&rarr; {3}</span><br>"
        "<span class=\"c\">{5:.1f}% &middot; #{0}</span></figcaption></figure>\n",
        m.index, png_data_uri(m.pixels.data(), t.cols, t.rows), html_escape(class_name(in, m.truth)),
        html_escape(class_name(in, m.predicted)), m.confidence, m.confidence * 100.0);
  }
  return o + "</div>\n";
}

std::string missing(const std::string& why) { return "<p class=\"missing\">" + html_escape(why) + "</p>\n"; }

}  // namespace

std::string html_escape(const std::string& s) { return svg::escape(s); }

void WorstCollector::add(int64_t index, int truth, const float* probs, int classes) {
  const int pred = argmax(probs, classes);
  if (pred == truth || keep_ == 0) return;
  Misclassified m;
  m.index = index;
  m.truth = truth;
  m.predicted = pred;
  m.confidence = probs[pred];
  // A min-heap whose top is the least confident kept item ("greater" = more confident first).
  auto cmp = [](const Misclassified& a, const Misclassified& b) { return more_confident(a, b); };
  if (items_.size() < keep_) {
    items_.push_back(m);
    std::push_heap(items_.begin(), items_.end(), cmp);
  } else if (more_confident(m, items_.front())) {
    std::pop_heap(items_.begin(), items_.end(), cmp);
    items_.back() = m;
    std::push_heap(items_.begin(), items_.end(), cmp);
  }
}

std::vector<Misclassified> WorstCollector::result(const std::vector<uint8_t>& images, int64_t sample_size) const {
  std::vector<Misclassified> out = items_;
  std::sort(out.begin(), out.end(), more_confident);
  for (auto& m : out) {
    const size_t at = static_cast<size_t>(m.index * sample_size);
    if (at + static_cast<size_t>(sample_size) <= images.size())
      m.pixels.assign(images.begin() + static_cast<std::ptrdiff_t>(at), images.begin() + static_cast<std::ptrdiff_t>(at + sample_size));
  }
  return out;
}

std::string render_report(const ReportInputs& in) {
  const RunData& run = *in.run;
  const std::string name = run.config ? run.config->name : run.dir;
  const std::string dataset = run.config ? run.config->data.dataset : std::string("unknown");
  std::string o;
  o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  o += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n";
  o += std::string(kReportMarker) + "\n";
  o += fmt::format("<title>mnistctl report: {}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n", html_escape(name), kStyle);
  o += fmt::format("<h1>{} on {}</h1>\n<p class=\"sub\">Run folder <b>{}</b> &middot; {} &middot; report generated {}</p>\n",
                   html_escape(name), html_escape(dataset), html_escape(run.dir), html_escape(run.state()), html_escape(in.generated_at));

  // Summary cards.
  o += "<section class=\"cards\" id=\"summary\">\n";
  const EpochRecord* last = nullptr;
  const EpochRecord* best = nullptr;
  double train_time = 0, val_time = 0, speed_sum = 0;
  int speed_n = 0;
  for (const auto& e : run.epochs) {
    if (finite(e.val_accuracy)) {
      last = &e;
      if (!best || e.val_accuracy > best->val_accuracy) best = &e;
    }
    if (finite(e.time_s)) train_time += e.time_s;
    if (finite(e.val_time_s)) val_time += e.val_time_s;
    if (finite(e.images_per_s)) speed_sum += e.images_per_s, ++speed_n;
  }
  o += card("Validation accuracy", last ? fmt::format("{:.4f}", last->val_accuracy) : "-",
            last ? fmt::format("after epoch {}", last->epoch) : "no epoch finished yet");
  o += card("Best validation accuracy", best ? fmt::format("{:.4f}", best->val_accuracy) : "-",
            best ? fmt::format("epoch {}", best->epoch) : "no epoch finished yet");
  if (in.test)
    o += card("Test accuracy", fmt::format("{:.4f}", in.test->eval.accuracy), fmt::format("{}.ckpt, {} images", in.test->checkpoint_kind, in.test->eval.count));
  else
    o += card("Test accuracy", "-", "no checkpoint evaluated");
  const int64_t done = run.epochs.empty() ? 0 : run.epochs.back().epoch;
  o += card("Epochs", run.planned_epochs > 0 ? fmt::format("{} / {}", done, run.planned_epochs) : std::to_string(done),
            run.planned_epochs > 0 && done >= run.planned_epochs ? "complete"
            : !run.stopped_by.empty() && run.stopped_by != "epochs" ? "stopped early (train." + run.stopped_by + ")"
                                                                    : "not complete");
  if (run.target_accuracy > 0)
    o += card(fmt::format("Time to accuracy {:g}", run.target_accuracy),
              run.time_to_accuracy_s >= 0 ? duration(run.time_to_accuracy_s) : "-",
              run.time_to_accuracy_s >= 0 ? fmt::format("training time to the end of epoch {}", run.time_to_accuracy_epoch)
                                          : "not reached");
  o += card("Training time", duration(train_time + val_time), fmt::format("{} training + {} validation", duration(train_time), duration(val_time)));
  o += card("Training speed", speed_n ? fmt::format("{:.0f}", speed_sum / speed_n) : "-", "images/s, mean of epochs");
  o += "</section>\n";

  if (!run.notes.empty()) {
    o += "<section id=\"notes\" class=\"notes\"><h2>Notes</h2><ul>\n";
    for (const auto& n : run.notes) o += "<li>" + html_escape(n) + "</li>\n";
    o += "</ul></section>\n";
  }

  o += "<section id=\"curves\"><h2>Training curves</h2>\n<p class=\"sub\">Training figures are running means within "
       "each epoch, logged every <code>train.log_interval</code> batches (light) and at the end of each epoch (dots); "
       "validation runs over the test set after each epoch.</p>\n<div class=\"grid\">\n";
  o += curves(run);
  o += "</div></section>\n";

  o += "<section id=\"confusion\"><h2>Test set: confusion matrix and per-class accuracy</h2>\n";
  o += in.test ? test_panels(in) : missing(in.test_missing);
  o += "</section>\n";
  o += "<section id=\"misclassified\"><h2>Most confidently misclassified test images</h2>\n";
  o += in.test ? misclassified_panel(in) : missing(in.test_missing);
  o += "</section>\n";

  // Per-epoch table.
  o += "<section id=\"epochs\"><h2>Epochs</h2>\n";
  if (run.epochs.empty()) {
    o += missing("No epoch has finished yet.");
  } else {
    o += "<table><tr><th>epoch</th><th>train loss</th><th>train acc.</th><th>val. loss</th><th>val. acc.</th>"
         "<th>learning rate</th><th>train time</th><th>val. time</th><th>images/s</th></tr>\n";
    for (const auto& e : run.epochs)
      o += fmt::format(
          "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
          "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
          e.epoch, fixed(e.loss, 4), fixed(e.train_accuracy, 4), fixed(e.val_loss, 4), fixed(e.val_accuracy, 4),
          finite(e.lr) ? fmt::format("{:g}", e.lr) : "-", duration(e.time_s), duration(e.val_time_s), fixed(e.images_per_s, 0));
    o += "</table>\n";
  }
  o += "</section>\n";

  // Run details.
  auto meta = [&](const char* k) {
    auto it = run.checkpoint_meta.find(k);
    return it == run.checkpoint_meta.end() ? std::string("-") : it->second;
  };
  std::vector<std::pair<std::string, std::string>> rows{{"run folder", run.dir}, {"state", run.state()}, {"dataset", dataset}};
  if (run.config) {
    const Config& c = *run.config;
    rows.push_back({"network", fmt::format("{} ({} layers)", c.name, c.network.layers.size())});
    rows.push_back({"optimizer", fmt::format("{}, learning rate {:g}, schedule {}, batch {}", c.train.optimizer.type,
                                             c.train.optimizer.learning_rate, c.train.lr_schedule.type, c.train.batch_size)});
    rows.push_back({"training images", c.data.train_limit > 0 ? fmt::format("first {}", c.data.train_limit) : "all"});
    rows.push_back({"seed", std::to_string(c.train.seed)});
  }
  rows.push_back({"checkpoint", run.checkpoint.empty() ? "none yet" : fmt::format("{} (epoch {}, step {})", run.checkpoint, meta("epoch"), meta("step"))});
  rows.push_back({"trained on (backend)", meta("backend")});
  if (in.test) rows.push_back({"report inference on", in.test->backend});
  if (run.batches_per_epoch > 0) rows.push_back({"batches per epoch", std::to_string(run.batches_per_epoch)});
  rows.push_back({"mnistctl", in.tool_version});
#if defined(__clang__)
  rows.push_back({"compiler", "clang " __clang_version__});
#elif defined(__GNUC__)
  rows.push_back({"compiler", "GCC " __VERSION__});
#endif
  rows.push_back({"report generated", in.generated_at});
  o += "<section id=\"run\"><h2>Run</h2>\n<table>\n";
  for (const auto& [k, v] : rows) o += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", html_escape(k), html_escape(v));
  o += "</table></section>\n";

  o += "<section id=\"config\"><h2>Config (config.yaml)</h2>\n";
  o += run.config_yaml.empty() ? missing("The run folder has no config.yaml.") : "<pre>" + html_escape(run.config_yaml) + "</pre>\n";
  o += "</section>\n</main>\n</body>\n</html>\n";
  return o;
}

}  // namespace mnistctl
