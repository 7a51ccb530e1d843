// `mnistctl report` through the binary on a short real MNIST run, and the page rendered by a
// real browser (headless Chromium, Debian's `chromium`): the screenshot has the page size and
// is not blank, the browser logs no console message (the page's Content-Security-Policy
// turns any attempted fetch into one), and the key panels are in the DOM. Also: an
// interrupted run without a checkpoint, best.ckpt preferred, and --output that refuses to
// replace a file that is not a report.
#include <png.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "test_util.h"

using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

// A short MLP run (2 epochs over 3,000 images, logged every 5 batches) into <scratch>/run.
std::string short_run(const std::string& name, std::string& root) {
  root = data_root(name);
  const std::string run = root + "/run";
  RunResult t = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--data-dir", root,
                              "--out", run, "--epochs", "2", "--threads", "2", "--set", "data.train_limit=3000", "--set",
                              "init.type=xavier", "--set", "train.log_interval=5"});
  INFO(t.out << t.err);
  REQUIRE(t.code == 0);
  return run;
}

std::string chromium() {
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (fs::exists(c)) return c;
  FAIL("chromium not found: the report's browser test needs Debian's chromium (scripts/setup.sh installs it)");
  return "";
}

// Runs headless Chromium on a file with a fresh profile; returns its exit code, stderr in `log`.
int run_chromium(const std::string& html, const std::string& extra, const std::string& log, const std::string& profile) {
  fs::remove_all(profile);
  fs::create_directories(profile);
  const std::string cmd = chromium() +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                          "--disable-background-networking --disable-component-update --disable-sync "
                          "--hide-scrollbars --enable-logging=stderr --v=0 --user-data-dir='" +
                          profile + "' " + extra + " 'file://" + fs::absolute(html).string() + "' 2>'" + log + "'";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Lines where the page's console said something (errors, CSP violations, warnings).
std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(read_text(log));
  for (std::string line; std::getline(in, line);)
    if (line.find(":CONSOLE") != std::string::npos) out.push_back(line);
  return out;
}

struct Screenshot {
  uint32_t width = 0, height = 0;
  size_t distinct_colours = 0;
};
Screenshot read_png(const std::string& path) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_file(&img, path.c_str()) != 0);
  img.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(img));
  REQUIRE(png_image_finish_read(&img, nullptr, px.data(), 0, nullptr) != 0);
  std::set<uint32_t> colours;
  for (size_t i = 0; i + 2 < px.size() && colours.size() < 5000; i += 3 * 7)
    colours.insert((uint32_t(px[i]) << 16) | (uint32_t(px[i + 1]) << 8) | px[i + 2]);
  return {img.width, img.height, colours.size()};
}

}  // namespace

TEST_CASE("report of a short real run renders in headless Chromium without errors or outside references") {
  std::string root;
  const std::string run = short_run("report-browser", root);
  RunResult r = run_mnistctl({"report", run, "--data-dir", root, "--threads", "2"});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("report.html") && Catch::Contains("test accuracy"));
  const std::string html_path = run + "/report.html";
  const std::string html = read_text(html_path);
  REQUIRE(!html.empty());

  // Self-contained: nothing fetched from anywhere.
  CHECK(html.find("<script") == std::string::npos);
  CHECK_FALSE(std::regex_search(html, std::regex(R"((src|href)\s*=\s*["']?\s*(https?:)?//)", std::regex::icase)));
  CHECK_FALSE(std::regex_search(html, std::regex(R"(@import|url\()", std::regex::icase)));
  CHECK(html.find("Content-Security-Policy") != std::string::npos);
  // The panels, with real content: a 10x10 confusion matrix, digits, the config.
  CHECK(html.find("Confusion matrix (test set)") != std::string::npos);
  CHECK(html.find("Per-class accuracy (test set)") != std::string::npos);
  CHECK(html.find("data:image/png;base64,") != std::string::npos);
  CHECK(html.find("best.ckpt") != std::string::npos);  // train keeps the best epoch; report prefers it
  CHECK(html.find("name: mlp") != std::string::npos);
  CHECK(html.find("complete: 2 of 2 epochs") != std::string::npos);

  // The browser: a screenshot of the page's size that is not blank, and no console message.
  const std::string dir = fs::path(run).parent_path().string();
  const std::string png = dir + "/report.png";
  const int rc = run_chromium(html_path, "--window-size=1280,2600 --screenshot='" + png + "'", dir + "/shot.log", dir + "/profile1");
  INFO(read_text(dir + "/shot.log"));
  REQUIRE(rc == 0);
  REQUIRE(fs::exists(png));
  Screenshot s = read_png(png);
  CHECK(s.width == 1280);
  CHECK(s.height == 2600);
  CHECK(s.distinct_colours > 50);  // charts, heat map and digits drew (a blank page has a handful)
  CHECK(console_lines(dir + "/shot.log").empty());

  // The DOM the browser built holds the panels (the page parsed as intended).
  REQUIRE(run_chromium(html_path, "--dump-dom > '" + dir + "/dom.html'", dir + "/dom.log", dir + "/profile2") == 0);
  const std::string dom = read_text(dir + "/dom.html");
  for (const char* id : {"id=\"summary\"", "id=\"curves\"", "id=\"confusion\"", "id=\"misclassified\"", "id=\"epochs\"",
                         "id=\"run\"", "id=\"config\""})
    CHECK(dom.find(id) != std::string::npos);
  CHECK(std::count(dom.begin(), dom.end(), '<') > 500);
  CHECK(dom.find("<svg") != std::string::npos);
  CHECK(dom.find("<figure ") != std::string::npos);
  CHECK(console_lines(dir + "/dom.log").empty());

  // The console check can fail: a page that tries to fetch an image is caught.
  {
    std::ofstream(dir + "/bad.html") << "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                                        "content=\"default-src 'none'; img-src data:\"></head><body>"
                                        "<img src=\"http://127.0.0.1:9/x.png\"></body></html>";
  }
  REQUIRE(run_chromium(dir + "/bad.html", "--dump-dom > /dev/null", dir + "/bad.log", dir + "/profile3") == 0);
  CHECK_FALSE(console_lines(dir + "/bad.log").empty());
}

TEST_CASE("report: an interrupted run without a checkpoint, best.ckpt preferred, --output never destroys a file") {
  std::string root;
  const std::string run = short_run("report-partial", root);

  // A copy as a run would look mid-way through epoch 1: no checkpoint, the last record cut.
  std::string metrics = read_text(run + "/metrics.jsonl");
  const size_t first_epoch = metrics.find("{\"type\":\"epoch\"");
  REQUIRE(first_epoch != std::string::npos);
  // A copy of the run's config with `records` as its metrics.jsonl and no checkpoint, reported:
  // returns the report's text, the command's stdout in `said`.
  auto report_of_copy = [&](const std::string& name, const std::string& records, std::string& said) {
    const std::string copy = root + "/" + name;
    fs::create_directories(copy);
    fs::copy_file(run + "/config.yaml", copy + "/config.yaml", fs::copy_options::overwrite_existing);
    std::ofstream(copy + "/metrics.jsonl", std::ios::binary | std::ios::trunc) << records;
    RunResult r = run_mnistctl({"report", copy, "--data-dir", root});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    said = r.out;
    return read_text(copy + "/report.html");
  };
  std::string said;
  const std::string partial = root + "/partial";
  const std::string ph = report_of_copy("partial", metrics.substr(0, first_epoch + 30), said);  // cut mid-record
  CHECK(ph.find("No checkpoint yet") != std::string::npos);
  CHECK(ph.find("cut mid-write") != std::string::npos);
  CHECK(ph.find("0 of 2 epochs") != std::string::npos);
  CHECK(ph.find("<path d=\"M") != std::string::npos);  // the logged batches are drawn

  // Before its first record (the first log interval, or a run stopped at once): empty charts.
  const std::string fh = report_of_copy("fresh", "", said);
  CHECK(fh.find("No checkpoint yet") != std::string::npos);
  CHECK(fh.find("no data yet") != std::string::npos);
  CHECK_THAT(said, Catch::Contains("not started (no epoch or batch logged yet)"));

  // best.ckpt (which train writes) is preferred when present, and the page says so.
  REQUIRE(fs::exists(run + "/best.ckpt"));
  const std::string out = root + "/mine.html";
  RunResult b = run_mnistctl({"report", run, "--data-dir", root, "--output", out});
  INFO(b.out << b.err);
  REQUIRE(b.code == 0);
  const std::string bh = read_text(out);
  CHECK(bh.find("best.ckpt</b> (the best epoch by validation accuracy)") != std::string::npos);

  // A previous report may be replaced; any other file is refused and left as it was.
  RunResult again = run_mnistctl({"report", run, "--data-dir", root, "--output", out});
  CHECK(again.code == 0);
  const std::string precious = root + "/notes.html";
  std::ofstream(precious) << "my own notes\n";
  RunResult refuse = run_mnistctl({"report", run, "--data-dir", root, "--output", precious});
  CHECK(refuse.code == 2);
  CHECK_THAT(refuse.err, Catch::Contains("notes.html") && Catch::Contains("not a mnistctl report"));
  CHECK(read_text(precious) == "my own notes\n");
  // Another run's own report is that run's: refused, and left as it was.
  const std::string other_report = read_text(partial + "/report.html");
  RunResult theirs = run_mnistctl({"report", run, "--data-dir", root, "--output", partial + "/report.html"});
  CHECK(theirs.code == 2);
  CHECK_THAT(theirs.err, Catch::Contains("is the report.html of the run in " + partial));
  CHECK(read_text(partial + "/report.html") == other_report);
  fs::create_symlink(partial + "/report.html", root + "/theirs.html");  // nor through a symbolic link
  RunResult via_link = run_mnistctl({"report", run, "--data-dir", root, "--output", root + "/theirs.html"});
  CHECK(via_link.code == 2);
  CHECK_THAT(via_link.err, Catch::Contains("(a link to " + partial + "/report.html): is the report.html of the run in"));
  CHECK(read_text(partial + "/report.html") == other_report);

  // Not a run, no such folder, an output folder that does not exist.
  CHECK(run_mnistctl({"report", root + "/mnist"}).code == 2);
  RunResult none = run_mnistctl({"report", root + "/no-such-run"});
  CHECK(none.code == 2);
  CHECK_THAT(none.err, Catch::Contains("no-such-run"));
  RunResult nodir = run_mnistctl({"report", run, "--data-dir", root, "--output", root + "/nodir/r.html"});
  CHECK(nodir.code == 3);
  CHECK_THAT(nodir.err, Catch::Contains("does not exist"));
  // A damaged metrics.jsonl (not just a cut last line) is an error naming the line.
  std::ofstream(partial + "/metrics.jsonl", std::ios::binary) << "garbage\n" << metrics;
  RunResult bad = run_mnistctl({"report", partial, "--data-dir", root});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("metrics.jsonl:1"));
}
