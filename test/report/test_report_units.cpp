// The report's parts without the binary: the SVG writer (tick choice, escaping, NaN refused),
// the run-folder reader (a record cut mid-write, an interrupted run, damaged lines, other
// writers' records), the misclassified-image collector and the page's escaping.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "report/image_uri.h"
#include "report/report.h"
#include "report/run_reader.h"
#include "report/svg.h"
#include "test_util.h"

using namespace mnistctl;
using mnistctl::test::error_of;
namespace fs = std::filesystem;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

bool is_nice_step(double step) {
  const double m = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
  return std::fabs(m - 1) < 1e-9 || std::fabs(m - 2) < 1e-9 || std::fabs(m - 5) < 1e-9;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

const char* kBatch1 = R"({"type":"batch","epoch":1,"batch":300,"images_per_s":1000.0,"train_accuracy":0.5,"loss":1.5})";
const char* kEpoch1 =
    R"({"type":"epoch","epoch":1,"time_s":50.0,"images_per_s":1200.0,"train_accuracy":0.6,"loss":1.2,"val_accuracy":0.9,"val_loss":0.3,"val_time_s":3.0,"lr":0.1})";

}  // namespace

TEST_CASE("nice_ticks picks 1-2-5 steps that cover the data") {
  svg::Ticks t = svg::nice_ticks(0, 1);
  CHECK(t.step == Approx(0.2));
  REQUIRE(t.values.size() == 6);
  CHECK(t.values.front() == 0);
  CHECK(t.values.back() == Approx(1.0));
  CHECK(t.decimals == 1);
  CHECK(svg::tick_label(t.values[3], t.decimals) == "0.6");  // not 0.6000000000000001

  struct Case { double lo, hi; };
  for (Case c : {Case{0.113, 0.987}, Case{0, 12345}, Case{2.3021, 0.0412}, Case{-3.5, 17}, Case{0.0009, 0.0031},
                 Case{1e6, 1.7e6}, Case{0, 10}}) {
    INFO("range " << c.lo << " .. " << c.hi);
    svg::Ticks k = svg::nice_ticks(c.lo, c.hi, 6);
    CHECK(is_nice_step(k.step));
    CHECK(k.lo <= std::min(c.lo, c.hi));
    CHECK(k.hi >= std::max(c.lo, c.hi));
    CHECK(k.values.size() >= 3);
    CHECK(k.values.size() <= 12);
    for (double v : k.values) CHECK(std::fabs(v / k.step - std::round(v / k.step)) < 1e-6);  // on the step grid
    // Labels tell neighbouring ticks apart.
    for (size_t i = 1; i < k.values.size(); ++i)
      CHECK(svg::tick_label(k.values[i], k.decimals) != svg::tick_label(k.values[i - 1], k.decimals));
  }
  // One value: a span around it, not a zero-width axis.
  svg::Ticks one = svg::nice_ticks(0.1, 0.1);
  CHECK(one.lo < 0.1);
  CHECK(one.hi > 0.1);
  CHECK(svg::tick_label(-0.0001, 2) == "0.00");
}

TEST_CASE("the SVG writer refuses NaN and infinity") {
  CHECK_THROWS_AS(svg::nice_ticks(kNaN, 1), std::invalid_argument);
  CHECK_THROWS_AS(svg::nice_ticks(0, HUGE_VAL), std::invalid_argument);
  svg::LineChart c;
  c.series.push_back({"loss", {0, 1, 2}, {2.3, kNaN, 0.1}});
  CHECK_THAT(error_of([&] { svg::line_chart(c); }), Catch::Contains("series 'loss' y[1]"));
  c.series[0].y[1] = 1.0;
  c.series[0].x[2] = HUGE_VAL;
  CHECK_THROWS_AS(svg::line_chart(c), std::invalid_argument);
  c.series[0].x.pop_back();
  CHECK_THAT(error_of([&] { svg::line_chart(c); }), Catch::Contains("2 x and 3 y"));
  svg::BarChart b;
  b.labels = {"0", "1"};
  b.values = {0.5, kNaN};
  CHECK_THROWS_AS(svg::bar_chart(b), std::invalid_argument);
  svg::HeatMap h;
  h.row_names = h.col_names = {"a", "b"};
  h.counts = {1, 2, 3};
  CHECK_THROWS_AS(svg::heat_map(h), std::invalid_argument);
  h.counts = {1, -2, 3, 4};
  CHECK_THROWS_AS(svg::heat_map(h), std::invalid_argument);
}

TEST_CASE("the SVG writer escapes text and draws axes, ticks, labels and a legend") {
  svg::LineChart c;
  c.title = "A <b>&\"' title";
  c.x_label = "epoch";
  c.y_label = "loss & more";
  c.integer_x_ticks = true;
  c.series.push_back({"train <batch>", {0.5, 1, 1.5, 2}, {2.3, 1.0, 0.5, 0.25}});
  c.series.push_back({"validation", {1, 2}, {0.8, 0.2}, "#d62728", 2, true});
  const std::string s = svg::line_chart(c);
  CHECK(s.find("<b>") == std::string::npos);
  CHECK(s.find("A &lt;b&gt;&amp;&quot;&#39; title") != std::string::npos);
  CHECK(s.find("loss &amp; more") != std::string::npos);
  CHECK(s.find(">train &lt;batch&gt;</text>") != std::string::npos);  // legend entry
  CHECK(s.find(">validation</text>") != std::string::npos);
  CHECK(s.find(">epoch</text>") != std::string::npos);
  // Whole-epoch ticks 0..2 on x; 0, 0.5 ... 2.5 on y.
  for (const char* tick : {">0</text>", ">1</text>", ">2</text>", ">0.5</text>", ">2.5</text>"}) CHECK(s.find(tick) != std::string::npos);
  CHECK(s.find(">1.5</text>") != std::string::npos);  // y tick
  CHECK(s.find("nan") == std::string::npos);
  CHECK(s.find("<circle") != std::string::npos);  // validation markers
  CHECK(s.rfind("<svg", 0) == 0);
  CHECK(s.find("</svg>") != std::string::npos);

  svg::LineChart empty;
  empty.title = "nothing";
  CHECK(svg::line_chart(empty).find("no data yet") != std::string::npos);
  // No points but a fixed x range (a run's planned epochs, before its first record).
  svg::LineChart planned;
  planned.x_lo = 0;
  planned.x_hi = 10;
  planned.y_include_zero = true;
  planned.series.push_back({"validation", {}, {}});
  const std::string ps = svg::line_chart(planned);
  CHECK(ps.find("no data yet") != std::string::npos);
  CHECK(ps.find(">10</text>") != std::string::npos);
  CHECK(ps.find("nan") == std::string::npos);
  CHECK(ps.find("inf") == std::string::npos);

  // Large values read as thousands.
  svg::LineChart speed;
  speed.series.push_back({"images/s", {0, 1}, {0, 12000}});
  const std::string sp = svg::line_chart(speed);
  CHECK(sp.find(">10k</text>") != std::string::npos);
}

TEST_CASE("the heat map writes every nonzero count and a log colour scale") {
  svg::HeatMap h;
  h.title = "Confusion";
  h.row_label = "true class";
  h.col_label = "predicted class";
  h.row_names = h.col_names = {"T-shirt/top", "Ankle boot"};
  h.counts = {950, 3, 0, 1000};
  const std::string s = svg::heat_map(h);
  CHECK(s.find(">950</text>") != std::string::npos);
  CHECK(s.find(">3</text>") != std::string::npos);
  CHECK(s.find(">1000</text>") != std::string::npos);
  CHECK(s.find("count (log scale)") != std::string::npos);
  CHECK(s.find("rotate(-40)") != std::string::npos);  // long class names run diagonally
}

TEST_CASE("metrics.jsonl: a last record cut mid-write is skipped with a note") {
  RunData run;
  const std::string cut = std::string(R"({"type":"epoch","epoch":2,"time_s":4)");
  parse_metrics(std::string(kBatch1) + "\n" + kEpoch1 + "\n" + cut, "m.jsonl", run);
  REQUIRE(run.batches.size() == 1);
  REQUIRE(run.epochs.size() == 1);
  CHECK(run.epochs[0].val_accuracy == Approx(0.9));
  CHECK(run.epochs[0].lr == Approx(0.1));
  REQUIRE(run.notes.size() == 1);
  CHECK_THAT(run.notes[0], Catch::Contains("m.jsonl:3") && Catch::Contains("cut mid-write"));

  // The same damage in the middle of the file is an error naming the line.
  RunData r2;
  CHECK_THAT(error_of([&] { parse_metrics(std::string(kBatch1) + "\n" + cut + "\n" + kEpoch1 + "\n", "m.jsonl", r2); }),
             Catch::Contains("m.jsonl:2") && Catch::Contains("not a JSON object"));
  // A complete last line without its newline is still read.
  RunData r3;
  parse_metrics(std::string(kBatch1) + "\n" + kEpoch1, "m.jsonl", r3);
  CHECK(r3.epochs.size() == 1);
  CHECK(r3.notes.empty());
}

TEST_CASE("metrics.jsonl: other writers' records and fields are tolerated, wrong types are not") {
  RunData run;
  parse_metrics(std::string(R"({"type":"early_stop","epoch":3,"reason":"patience"})") + "\n" +
                    R"({"type":"epoch","epoch":1,"time_s":5,"loss":1.0,"val_accuracy":null,"best":true,"extra":{"a":[1,2]}})" + "\n" +
                    kEpoch1 + "\n" + R"({"no_type":1})" + "\n\n",
                "m.jsonl", run);
  REQUIRE(run.epochs.size() == 1);  // epoch 1 logged twice (a resume): the later record wins
  CHECK(run.epochs[0].val_accuracy == Approx(0.9));
  RunData r2;
  parse_metrics(R"({"type":"epoch","epoch":1,"time_s":5,"loss":1.0,"val_accuracy":null})", "m.jsonl", r2);
  REQUIRE(r2.epochs.size() == 1);
  CHECK(std::isnan(r2.epochs[0].val_accuracy));
  CHECK(std::isnan(r2.epochs[0].lr));
  RunData r3;
  CHECK_THAT(error_of([&] { parse_metrics(R"({"type":"batch","epoch":1,"batch":10,"loss":"high"})" "\n", "m.jsonl", r3); }),
             Catch::Contains("m.jsonl:1") && Catch::Contains("'loss'"));
  RunData r4;
  CHECK_THAT(error_of([&] { parse_metrics(R"({"type":"batch","epoch":-1,"batch":10})" "\n", "m.jsonl", r4); }),
             Catch::Contains("'epoch'"));
}

TEST_CASE("read_run: an interrupted run without a checkpoint, and folders that are not runs") {
  const std::string dir = test::scratch_dir("report-reader");
  CHECK_THAT(error_of([&] { read_run(dir + "/nope"); }), Catch::Contains("no such run folder"));
  std::ofstream(dir + "/last.ckpt") << "x";  // a file of the run instead of its folder
  CHECK_THAT(error_of([&] { read_run(dir + "/last.ckpt"); }), Catch::Contains("last.ckpt: is a file; report takes the run folder"));
  std::filesystem::remove(dir + "/last.ckpt");
  CHECK_THAT(error_of([&] { read_run(dir); }), Catch::Contains("not a run folder"));
  try {
    read_run(dir);
  } catch (const Error& e) {
    CHECK(e.code() == kExitUsage);
  }

  write(dir + "/config.yaml", "name: tiny\ndata: {train_limit: 1200}\nnetwork:\n  layers:\n"
                              "    - {type: flatten}\n    - {type: fully_connected, num_hidden: 10}\n"
                              "    - {type: softmax_output}\ntrain: {epochs: 3, batch_size: 100}\n");
  write(dir + "/metrics.jsonl",
        std::string(R"({"type":"batch","epoch":1,"batch":6,"images_per_s":1000.0,"train_accuracy":0.5,"loss":1.5})") +
            "\n" + kEpoch1 + "\n" + R"({"type":"batch","epoch":2,"batch":6,"images_per_s":1000.0,"train_accuracy":0.7,"lo)");
  RunData run = read_run(dir);
  REQUIRE(run.config);
  CHECK(run.config->name == "tiny");
  CHECK(run.planned_epochs == 3);
  CHECK(run.batches_per_epoch == 12);  // 1200 images / batch 100, from the config (no checkpoint)
  CHECK(run.checkpoint.empty());
  CHECK(run.batches.size() == 1);
  CHECK(run.epochs.size() == 1);
  CHECK(run.batch_x(run.batches[0]) == Approx(0.5));
  BatchRecord b2{2, 6};
  CHECK(run.batch_x(b2) == Approx(1.5));  // continuous across epochs
  CHECK_THAT(run.state(), Catch::Contains("1 of 3 epochs") && Catch::Contains("interrupted"));
  REQUIRE(run.notes.size() == 1);
  CHECK_THAT(run.notes[0], Catch::Contains("cut mid-write"));

  // A config.yaml larger than any config is not read into the page: a note says so.
  write(dir + "/config.yaml", std::string(kMaxConfigBytes + 1, '#'));
  RunData big = read_run(dir);
  CHECK(big.config_yaml.empty());
  CHECK(!big.config);
  REQUIRE(big.notes.size() == 2);
  CHECK_THAT(big.notes[0], Catch::Contains("config.yaml is not shown: 1048577 bytes"));

  // The page says why the test-set panels are empty, and escapes the config's text.
  write(dir + "/config.yaml", "name: tiny # <script>alert(1)</script>\ntrain: {epochs: 3}\n");
  RunData run2 = read_run(dir);
  ReportInputs in;
  in.run = &run2;
  in.test_missing = "No checkpoint yet: wait for the first epoch";
  const std::string html = render_report(in);
  CHECK(html.find(kReportMarker) != std::string::npos);
  CHECK(html.find("No checkpoint yet: wait for the first epoch") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
  for (const char* id : {"id=\"summary\"", "id=\"curves\"", "id=\"confusion\"", "id=\"misclassified\"", "id=\"epochs\"",
                         "id=\"run\"", "id=\"config\""})
    CHECK(html.find(id) != std::string::npos);
}

TEST_CASE("WorstCollector keeps the most confident wrong predictions") {
  WorstCollector w(2);
  auto row = [](int cls, float p) {
    std::vector<float> r(3, (1 - p) / 2);
    r[static_cast<size_t>(cls)] = p;
    return r;
  };
  w.add(0, 0, row(1, 0.6f).data(), 3);  // wrong, 0.6
  w.add(1, 1, row(1, 0.99f).data(), 3); // right: ignored
  w.add(2, 2, row(0, 0.9f).data(), 3);  // wrong, 0.9
  w.add(3, 0, row(2, 0.7f).data(), 3);  // wrong, 0.7: pushes out 0.6
  std::vector<uint8_t> images(4 * 4);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<uint8_t>(i);
  auto r = w.result(images, 4);
  REQUIRE(r.size() == 2);
  CHECK(r[0].index == 2);
  CHECK(r[0].predicted == 0);
  CHECK(r[0].truth == 2);
  CHECK(r[0].confidence == Approx(0.9f));
  CHECK(r[1].index == 3);
  CHECK(r[1].pixels == std::vector<uint8_t>{12, 13, 14, 15});
}

TEST_CASE("digits become PNG data URIs") {
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foobar") == "Zm9vYmFy");
  std::vector<uint8_t> px(28 * 28, 0);
  px[28 * 14 + 14] = 255;
  const std::string png = encode_png_gray(px.data(), 28, 28);
  REQUIRE(png.size() > 33);
  CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  CHECK(static_cast<uint8_t>(png[19]) == 28);  // IHDR width (big-endian, low byte)
  CHECK(static_cast<uint8_t>(png[23]) == 28);  // IHDR height
  CHECK(png_data_uri(px.data(), 28, 28).rfind("data:image/png;base64,iVBORw0KGgo", 0) == 0);
}

TEST_CASE("metrics.jsonl: train's summary record says how the run ended and its time to accuracy") {
  RunData run;
  run.planned_epochs = 10;
  parse_metrics(std::string(kEpoch1) + "\n" +
                    R"({"type":"summary","epochs":1,"stopped_by":"stop_at_accuracy","val_accuracy":0.9,)"
                    R"("best_val_accuracy":0.9,"best_epoch":1,"train_time_s":50.0,"wall_time_s":55.0,)"
                    R"("target_accuracy":0.85,"time_to_accuracy_s":50.0,"time_to_accuracy_epoch":1})" "\n",
                "m.jsonl", run);
  CHECK(run.stopped_by == "stop_at_accuracy");
  CHECK(run.target_accuracy == Approx(0.85));
  CHECK(run.time_to_accuracy_s == Approx(50.0));
  CHECK(run.time_to_accuracy_epoch == 1);
  CHECK_THAT(run.state(), Catch::Contains("stopped early by train.stop_at_accuracy after 1 of 10 epochs"));
  ReportInputs in;
  in.run = &run;
  in.test_missing = "no checkpoint";
  const std::string html = render_report(in);
  CHECK(html.find("Time to accuracy 0.85") != std::string::npos);
  CHECK(html.find("training time to the end of epoch 1") != std::string::npos);
  CHECK(html.find("stopped early (train.stop_at_accuracy)") != std::string::npos);

  // Without a summary (still training, or interrupted) nothing of the kind is claimed.
  RunData open;
  open.planned_epochs = 10;
  parse_metrics(std::string(kEpoch1) + "\n", "m.jsonl", open);
  CHECK(open.stopped_by.empty());
  CHECK(open.time_to_accuracy_s < 0);
  CHECK_THAT(open.state(), Catch::Contains("interrupted"));
}
