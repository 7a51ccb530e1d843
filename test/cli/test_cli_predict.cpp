// `mnistctl predict` end to end through the binary, on a small MLP trained on real MNIST:
// the one preprocessing (an off-centre 28x28 digit is read right, and differently with --raw),
// --save-preprocessed, the format from --format or the output's extension, the true label
// (and Fashion-MNIST's class names) in test-set output, folders, error rows with exit 2,
// streaming (peak memory bounded on an IDX file of hundreds of thousands of images, output
// atomic), and image refusals in bounded memory.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>

#include "cli/process.h"
#include "data/dataset.h"
#include "data/image.h"
#include "test_util.h"

using namespace mnistctl;
using namespace mnistctl::test;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

// A small MLP (xavier init learns within a small epoch); returns its run folder.
std::string train_mlp(const std::string& root, const std::string& name, const std::string& dataset = "mnist") {
  std::string out = scratch_dir(name);
  RunResult r = run_mnistctl({"train", "--config", config_file("mlp.yaml"),
                              "--data-dir", root, "--out", out, "--epochs", "2", "--threads", "2", "--set",
                              "data.train_limit=6000", "--set", "init.type=xavier", "--set",
                              "data.dataset=" + dataset});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  return out;
}

// Runs mnistctl, which must succeed; returns what it wrote to stdout.
std::string stdout_of(const std::vector<std::string>& args) {
  RunResult r = run_mnistctl(args);
  INFO("mnistctl " << args[0] << ": " << r.err);
  REQUIRE(r.code == 0);
  return r.out;
}

void write_file(const std::string& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << s;
  REQUIRE(f.good());
}

std::string pgm(int w, int h, const uint8_t* px) {
  return "P5\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n" +
         std::string(reinterpret_cast<const char*>(px), size_t(w) * h);
}

std::string idx_images(uint32_t count, const Bytes& px) {
  std::string s;
  for (uint32_t v : {0x00000803u, count, 28u, 28u})
    for (int k = 3; k >= 0; --k) s += static_cast<char>((v >> (8 * k)) & 0xFF);
  return s + std::string(px.begin(), px.end());
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> v;
  std::string f;
  std::istringstream in(line);
  while (std::getline(in, f, ',')) v.push_back(f);
  if (!line.empty() && line.back() == ',') v.push_back("");
  return v;
}

// The ink's box moved into the top-left corner of the 28x28 frame.
Bytes to_corner(const uint8_t* digit) {
  int x0 = 28, y0 = 28;
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x)
      if (digit[y * 28 + x]) x0 = std::min(x0, x), y0 = std::min(y0, y);
  Bytes out(784, 0);
  for (int y = y0; y < 28; ++y)
    for (int x = x0; x < 28; ++x) out[(y - y0) * 28 + x - x0] = digit[y * 28 + x];
  return out;
}

// A gzip IDX file of `count` blank 28x28 images, deflated as a stream (small in memory).
void write_blank_idx_gz(const std::string& path, uint32_t count) {
  gzFile f = gzopen(path.c_str(), "wb9");
  REQUIRE(f);
  std::string head = idx_images(count, {});
  REQUIRE(gzwrite(f, head.data(), static_cast<unsigned>(head.size())) == static_cast<int>(head.size()));
  const std::vector<char> zeros(784 * 1000, 0);
  for (uint32_t done = 0; done < count;) {
    uint32_t n = std::min<uint32_t>(1000, count - done);
    REQUIRE(gzwrite(f, zeros.data(), n * 784) == static_cast<int>(n * 784));
    done += n;
  }
  REQUIRE(gzclose(f) == Z_OK);
}

// PNG chunks by hand (no libpng in this test): length, type, data, CRC-32 of type + data.
void put_chunk(std::string& png, const char* type, const std::string& data) {
  for (int k = 3; k >= 0; --k) png += static_cast<char>((data.size() >> (8 * k)) & 0xFF);
  std::string td = std::string(type, 4) + data;
  png += td;
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(td.data()), static_cast<uInt>(td.size()));
  for (int k = 3; k >= 0; --k) png += static_cast<char>((crc >> (8 * k)) & 0xFF);
}
std::string be32(uint32_t v) {
  std::string s;
  for (int k = 3; k >= 0; --k) s += static_cast<char>((v >> (8 * k)) & 0xFF);
  return s;
}
std::string zlib_of(const std::string& raw) {
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  std::string out(n, '\0');
  REQUIRE(compress2(reinterpret_cast<Bytef*>(&out[0]), &n, reinterpret_cast<const Bytef*>(raw.data()),
                    static_cast<uLong>(raw.size()), 9) == Z_OK);
  out.resize(n);
  return out;
}

}  // namespace

TEST_CASE("predict reads an off-centre 28x28 digit right after preprocessing and not with --raw") {
  std::string root = data_root("pp-corner");
  std::string run = train_mlp(root, "pp-corner-run");
  std::string dir = scratch_dir("pp-corner-in"), seen = scratch_dir("pp-corner-seen") + "/seen";
  Dataset test = load_split(root, "mnist", Split::test, 20);
  std::vector<Bytes> corner;
  for (int k = 0; k < 20; ++k) {
    corner.push_back(to_corner(test.images.data() + k * 784));
    char name[32];
    std::snprintf(name, sizeof name, "/%02d.pgm", k);
    write_file(dir + name, pgm(28, 28, corner.back().data()));
  }
  auto lp = lines(stdout_of({"predict", "--model", run, "--input", dir, "--save-preprocessed", seen}));
  auto lr = lines(stdout_of({"predict", "--model", run, "--input", dir, "--raw"}));
  REQUIRE(lp.size() == 21);
  REQUIRE(lr.size() == 21);
  CHECK(lp[0] == "source,index,predicted,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,error");
  int right_pre = 0, right_raw = 0;
  for (int k = 0; k < 20; ++k) {
    auto fp = fields(lp[k + 1]), fr = fields(lr[k + 1]);
    REQUIRE(fp.size() == 14);
    char name[32];
    std::snprintf(name, sizeof name, "/%02d.pgm", k);
    CHECK(fp[0] == dir + name);  // the folder's files in name order
    right_pre += std::stoi(fp[2]) == test.labels[k];
    right_raw += std::stoi(fr[2]) == test.labels[k];
  }
  WARN("digits drawn in the corner, read right: " << right_pre << "/20 preprocessed, " << right_raw << "/20 with --raw");
  CHECK(right_pre >= 14);
  CHECK(right_raw <= 6);
  // Test image 0, a clear 7, in the corner.
  REQUIRE(test.labels[0] == 7);
  CHECK(fields(lp[1])[2] == "7");
  CHECK(fields(lr[1])[2] != "7");

  // --save-preprocessed: what the network saw, one PGM per row, named by row and file.
  for (int k = 0; k < 20; ++k) {
    char name[48];
    std::snprintf(name, sizeof name, "/%06d-%02d.pgm", k, k);
    INFO(name);
    REQUIRE(fs::exists(seen + name));
    CHECK(read_text(seen + name) == pgm(28, 28, prepare_digit(corner[k], 28, 28, "x").data()));
  }
  // With --raw, the stored pixels themselves.
  std::string seen_raw = scratch_dir("pp-corner-seen-raw");
  stdout_of({"predict", "--model", run, "--input", dir + "/00.pgm", "--raw", "--save-preprocessed", seen_raw});
  CHECK(read_text(seen_raw + "/000000-00.pgm") == pgm(28, 28, corner[0].data()));

  // --raw takes pictures at the model's size only: any other is an error row, exit 2.
  Bytes big(56 * 56, 0);
  for (int y = 0; y < 56; ++y)
    for (int x = 0; x < 56; ++x) big[y * 56 + x] = test.images[(y / 2) * 28 + x / 2];
  write_file(dir + "/big.pgm", pgm(56, 56, big.data()));
  RunResult r56 = run_mnistctl({"predict", "--model", run, "--input", dir + "/big.pgm", "--raw"});
  CHECK(r56.code == 2);
  CHECK(r56.out.find(dir + "/big.pgm,0,,,,,,,,,,,," + dir + "/big.pgm: image is 56x56: --raw takes images at the model's input size (28x28) only\n") != std::string::npos);
  CHECK(stdout_of({"predict", "--model", run, "--input", dir + "/big.pgm"}).find(dir + "/big.pgm,0,7,") !=
        std::string::npos);
}

TEST_CASE("predict takes its format from --format or the output extension and a conflict is one line") {
  std::string root = data_root("pp-format");
  std::string run = train_mlp(root, "pp-format-run");
  std::string out = scratch_dir("pp-format-out");
  Dataset test = load_split(root, "mnist", Split::test, 1);
  write_file(out + "/seven.pgm", pgm(28, 28, test.images.data()));
  const std::string in = out + "/seven.pgm";

  // The seven predicted into out/<name> (`more` flags after), which must succeed: the file written.
  auto predict_to = [&](const std::string& name, const std::vector<std::string>& more = {}) {
    std::vector<std::string> a = {"predict", "--model", run, "--input", in, "--output", out + "/" + name};
    a.insert(a.end(), more.begin(), more.end());
    CHECK(stdout_of(a).empty());  // the rows go to the file only
    return read_text(out + "/" + name);
  };

  const std::string j = predict_to("p.json");
  CHECK(j.rfind("[\n{\"source\":", 0) == 0);
  CHECK(j.find("\"predicted\":7,\"probabilities\":[") != std::string::npos);
  CHECK(j.substr(j.size() - 3) == "\n]\n");
  CHECK(predict_to("P.JSON") == j);
  const std::string csv = predict_to("p.csv");
  CHECK(csv.rfind("source,index,predicted,p0,", 0) == 0);
  // Another extension: --format decides, csv without it.
  CHECK(predict_to("p.txt", {"--format", "json"}) == j);
  CHECK(predict_to("q.txt") == csv);
  // Agreeing flag and extension are fine; disagreeing ones are refused before anything is
  // written, and an existing file stays as it was.
  CHECK(predict_to("p.json", {"--format", "json"}) == j);
  write_file(out + "/keep.csv", "mine\n");
  RunResult bad = run_mnistctl({"predict", "--model", run, "--input", in, "--output", out + "/keep.csv", "--format", "json"});
  CHECK(bad.code == 2);
  CHECK(bad.out.empty());
  CHECK(bad.err == "mnistctl: --format json conflicts with --output " + out + "/keep.csv (a .csv file): drop one or make them agree\n");
  CHECK(read_text(out + "/keep.csv") == "mine\n");
  // An existing file is replaced only if it holds an earlier prediction (above: p.json, p.csv
  // again), or with --force; any other file is refused and left as it was.
  RunResult mine = run_mnistctl({"predict", "--model", run, "--input", in, "--output", out + "/keep.csv"});
  CHECK(mine.code == 2);
  CHECK(mine.err == "mnistctl: --output " + out + "/keep.csv: exists and is not an earlier prediction; it is left "
                    "alone (give another --output, or --force to replace it)\n");
  CHECK(read_text(out + "/keep.csv") == "mine\n");
  RunResult seen = run_mnistctl({"predict", "--model", run, "--input", in, "--output", out + "/keep.csv",
                                 "--save-preprocessed", out + "/seen"});
  CHECK(seen.code == 2);
  CHECK(!fs::exists(out + "/seen"));  // refused before anything was made
  write_file(out + "/keep.json", "[1, 2, 3]\n");
  CHECK(run_mnistctl({"predict", "--model", run, "--input", in, "--output", out + "/keep.json"}).code == 2);
  CHECK(read_text(out + "/keep.json") == "[1, 2, 3]\n");
  CHECK(predict_to("keep.csv", {"--force"}) == csv);
  CHECK(predict_to("keep.csv") == csv);  // now an earlier prediction
  CHECK(run_mnistctl({"predict", "--model", run, "--input", in, "--output", out + "/new.json", "--format", "csv"}).code == 2);
  CHECK(!fs::exists(out + "/new.json"));
  // --force never replaces an input of the command or a run's own file.
  const std::string image = read_text(in), ckpt = read_text(run + "/last.ckpt"), config = read_text(run + "/config.yaml");
  RunResult self = run_mnistctl({"predict", "--model", run, "--input", in, "--output", in, "--format", "csv", "--force"});
  CHECK(self.code == 2);
  CHECK(self.err == "mnistctl: --output " + in + ": is the same file as the input " + in + "; give another --output\n");
  RunResult read_ckpt = run_mnistctl({"predict", "--model", run, "--input", in, "--output", run + "/last.ckpt",
                                      "--format", "csv", "--force"});
  CHECK(read_ckpt.code == 2);
  CHECK(read_ckpt.err == "mnistctl: --output " + run + "/last.ckpt: is the same file as the input " + run +
                             "/last.ckpt; give another --output\n");
  RunResult own = run_mnistctl({"predict", "--model", run, "--input", in, "--output", run + "/config.yaml", "--format",
                                "csv", "--force"});
  CHECK(own.code == 2);
  CHECK(own.err == "mnistctl: --output " + run + "/config.yaml: is the config.yaml of the run in " + run +
                       "; a run's own files are not replaced, --force or not (give a path outside them)\n");
  // Through a symbolic link: what would be replaced is the link's target, a run's file.
  fs::create_symlink(fs::absolute(run + "/config.yaml"), out + "/link.csv");
  RunResult linked = run_mnistctl({"predict", "--model", run, "--input", in, "--output", out + "/link.csv", "--force"});
  CHECK(linked.code == 2);
  CHECK(linked.err.find("mnistctl: --output " + out + "/link.csv (a link to " + fs::absolute(run + "/config.yaml").string() +
                        "): is the config.yaml of the run in ") == 0);
  CHECK(read_text(run + "/config.yaml") == config);
  // A checkpoint given alone (--checkpoint FILE), and an image of an --input folder.
  const std::string loose = out + "/loose.ckpt", imgs = scratch_dir("pp-format-imgs");
  fs::copy_file(run + "/last.ckpt", loose);
  RunResult alone = run_mnistctl({"predict", "--checkpoint", loose, "--input", in, "--output", loose, "--format", "csv",
                                  "--force"});
  CHECK(alone.code == 2);
  CHECK(alone.err == "mnistctl: --output " + loose + ": is the same file as the input " + loose +
                         "; give another --output\n");
  write_file(imgs + "/a.pgm", image);
  RunResult in_folder = run_mnistctl({"predict", "--model", run, "--input", imgs, "--output", imgs + "/a.pgm",
                                      "--format", "csv", "--force"});
  CHECK(in_folder.code == 2);
  CHECK(in_folder.err == "mnistctl: --output " + imgs + "/a.pgm: is an image in the --input folder " + imgs +
                             "; give another --output\n");
  CHECK(read_text(imgs + "/a.pgm") == image);
  CHECK(read_text(loose) == ckpt);
  CHECK(read_text(in) == image);
  CHECK(read_text(run + "/last.ckpt") == ckpt);
  CHECK(read_text(run + "/config.yaml") == config);
  for (const auto& e : fs::directory_iterator(out)) CHECK(e.path().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("predict puts the true label in test-set output and Fashion-MNIST class names in predict and eval") {
  std::string root = data_root("pp-labels");
  std::string run = train_mlp(root, "pp-labels-run");
  Dataset test = load_split(root, "mnist", Split::test);
  auto l = lines(stdout_of({"predict", "--model", run, "--data-dir", root}));
  REQUIRE(l.size() == 10001);
  CHECK(l[0] == "source,index,label,predicted,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9");
  int right = 0;
  for (int i = 0; i < 10000; ++i) {
    auto f = fields(l[i + 1]);
    REQUIRE(f.size() == 14);
    CHECK(f[0] == "test");
    REQUIRE(f[1] == std::to_string(i));
    REQUIRE(f[2] == std::to_string(test.labels[i]));
    right += f[3] == f[2];
  }
  CHECK(right > 8000);  // chance is 1000
  CHECK(stdout_of({"predict", "--model", run, "--data-dir", root, "--format", "json"})
            .find("{\"source\":\"test\",\"index\":0,\"label\":7,\"predicted\":") != std::string::npos);

  // Fashion-MNIST: names beside the numbers.
  std::string froot = data_root("pp-fashion", "fashion-mnist");
  std::string frun = train_mlp(froot, "pp-fashion-run", "fashion-mnist");
  auto fl = lines(stdout_of({"predict", "--model", frun, "--data-dir", froot}));
  REQUIRE(fl.size() == 10001);
  CHECK(fl[0] == "source,index,label,label_name,predicted,predicted_name,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9");
  CHECK(fl[1].rfind("test,0,9,Ankle boot,", 0) == 0);  // Fashion-MNIST's first test image
  CHECK(fl[3].rfind("test,2,1,Trouser,", 0) == 0);
  const std::string fj = stdout_of({"predict", "--model", frun, "--data-dir", froot, "--format", "json"});
  CHECK(fj.find("{\"source\":\"test\",\"index\":0,\"label\":9,\"label_name\":\"Ankle boot\",\"predicted\":") != std::string::npos);
  CHECK(fj.find("\"predicted_name\":\"") != std::string::npos);
  const std::string e = stdout_of({"eval", "--model", frun, "--data-dir", froot});
  CHECK(e.find("\n  9 Ankle boot: ") != std::string::npos);
  CHECK(e.find("\n  0 T-shirt/top: ") != std::string::npos);
  CHECK(stdout_of({"eval", "--model", frun, "--data-dir", froot, "--json"})
            .find("\"class_names\":[\"T-shirt/top\",\"Trouser\",") != std::string::npos);
  // MNIST's classes are their digits: no names added.
  CHECK(stdout_of({"eval", "--model", run, "--data-dir", root}).find("\n  7: ") != std::string::npos);

  // Pictures for a Fashion-MNIST model are framed as its items are: the whole frame, not a
  // 20x20 box. Its test images as product photos (dark on white, in a larger canvas, off
  // centre) come out as the network saw them in the test set, and are classed the same.
  Dataset ft = load_split(froot, "fashion-mnist", Split::test, 200);
  std::string photos = scratch_dir("pp-fashion-photos"), seen = scratch_dir("pp-fashion-seen");
  for (int k = 0; k < 200; ++k) {
    Bytes canvas(64 * 48, 255);
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) canvas[(y + 3) * 64 + x + 30] = static_cast<uint8_t>(255 - ft.images[k * 784 + y * 28 + x]);
    char name[32];
    std::snprintf(name, sizeof name, "/%03d.pgm", k);
    write_file(photos + name, pgm(64, 48, canvas.data()));
  }
  auto fp = lines(stdout_of({"predict", "--model", frun, "--input", photos, "--save-preprocessed", seen}));
  REQUIRE(fp.size() == 201);
  int same = 0;
  for (int k = 0; k < 200; ++k) same += fields(fp[k + 1])[2] == fields(fl[k + 1])[4];  // predicted
  WARN("Fashion-MNIST test images as photos: " << same << " of 200 classed as in the test set");
  CHECK(same >= 180);
  // The first (an ankle boot, 28 pixels wide) fills the frame's width again.
  const std::string first = read_text(seen + "/000000-000.pgm");
  REQUIRE(first.size() == 13 + 784);  // "P5\n28 28\n255\n"
  int x0 = 28, x1 = -1;
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x)
      if (static_cast<uint8_t>(first[13 + y * 28 + x]) > 0) x0 = std::min(x0, x), x1 = std::max(x1, x);
  CHECK(x1 - x0 + 1 >= 27);
}

TEST_CASE("predict reads a folder sorted and skips non-images and a bad image is one error row and exit 2") {
  std::string root = data_root("pp-folder");
  std::string run = train_mlp(root, "pp-folder-run");
  std::string dir = scratch_dir("pp-folder-in"), out = scratch_dir("pp-folder-out");
  Dataset test = load_split(root, "mnist", Split::test, 4);
  write_file(dir + "/a.pgm", pgm(28, 28, test.images.data()));
  write_file(dir + "/b-broken.pgm", "P5\n28 28\n255\nshort");
  write_file(dir + "/c.idx", idx_images(3, Bytes(test.images.begin() + 784, test.images.end())));
  write_file(dir + "/notes.txt", "hello, world\n");
  write_file(dir + "/labels.idx", std::string("\0\0\x08\x01\0\0\0\x01\x07", 9));
  fs::create_directories(dir + "/sub");
  write_file(dir + "/sub/d.pgm", pgm(28, 28, test.images.data()));
  RunResult r = run_mnistctl({"predict", "--model", run, "--input", dir, "--input", dir + "/missing.png",
                              "--output", out + "/p.csv"});
  INFO(r.err);
  CHECK(r.code == 2);
  auto l = lines(read_text(out + "/p.csv"));  // written, error rows included
  REQUIRE(l.size() == 7);
  CHECK(l[1].rfind(dir + "/a.pgm,0,7,", 0) == 0);
  CHECK(l[2] == dir + "/b-broken.pgm,0,,,,,,,,,,,,\"" + dir +  // quoted: the message has a comma
                    "/b-broken.pgm: PGM: truncated: 28x28 needs 784 bytes of pixels, the file has 5\"");
  for (int i = 0; i < 3; ++i) {
    auto f = fields(l[3 + i]);
    CHECK(f[0] == dir + "/c.idx");
    CHECK(f[1] == std::to_string(i));
    CHECK(f[2] == std::to_string(test.labels[1 + i]));
    CHECK(f[13].empty());
  }
  CHECK(l[6] == dir + "/missing.png,0,,,,,,,,,,,," + dir + "/missing.png: cannot read: No such file or directory");
  CHECK(r.err.find("mnistctl: " + dir + "/b-broken.pgm: PGM: truncated") != std::string::npos);
  CHECK(r.err.find("mnistctl: " + dir + ": skipped 3 of its entries (not PGM, PNG or IDX image files): labels.idx, notes.txt, sub\n") != std::string::npos);
  CHECK(r.err.find("mnistctl: 2 inputs could not be read (error rows in the output)\n") != std::string::npos);

  // An IDX file of another layout is named as one, with the layout predict reads.
  write_file(out + "/flat.idx", std::string("\0\0\x0d\x02\0\0\0\x01\0\0\x03\x10", 12) + std::string(784 * 4, '\0'));
  RunResult flat = run_mnistctl({"predict", "--model", run, "--input", out + "/flat.idx"});
  CHECK(flat.code == 2);
  CHECK(flat.err.find(out + "/flat.idx: an IDX file of float32 with 2 dimensions; predict reads IDX images of uint8 "
                            "with 3 dimensions (count, rows, cols)") != std::string::npos);

  // JSON error rows carry the message.
  RunResult j = run_mnistctl({"predict", "--model", run, "--input", dir + "/b-broken.pgm", "--input", dir + "/a.pgm", "--format", "json"});
  CHECK(j.code == 2);
  CHECK(j.out.find("{\"source\":\"" + dir + "/b-broken.pgm\",\"index\":0,\"error\":\"" + dir + "/b-broken.pgm: PGM: truncated") != std::string::npos);
  CHECK(j.out.find("{\"source\":\"" + dir + "/a.pgm\",\"index\":0,\"predicted\":7,") != std::string::npos);
  // A folder with no images is an error, not an empty success.
  std::string none = scratch_dir("pp-folder-none");
  write_file(none + "/x.txt", "x");
  RunResult e2 = run_mnistctl({"predict", "--model", run, "--input", none});
  CHECK(e2.code == 2);
  CHECK(e2.err.find(none + ": no PGM, PNG or IDX image files in this folder") != std::string::npos);
  // An --output inside the --input folder is not one of its entries: neither its temporary
  // file while it is written nor, the second time, the file itself.
  std::string scans = scratch_dir("pp-folder-scans");
  write_file(scans + "/a.pgm", pgm(28, 28, test.images.data()));
  for (int time = 0; time < 2; ++time) {
    RunResult in_place = run_mnistctl({"predict", "--model", run, "--input", scans, "--output", scans + "/probs.csv"});
    INFO(in_place.err);
    CHECK(in_place.code == 0);
    CHECK(in_place.err.find("skipped") == std::string::npos);
    CHECK(lines(read_text(scans + "/probs.csv")).size() == 2);
  }
}

TEST_CASE("predict gives no row from a gzip IDX file whose data is corrupt, and every whole image before a cut") {
  std::string root = data_root("pp-gzdamage");
  std::string run = train_mlp(root, "pp-gzdamage-run");
  std::string dir = scratch_dir("pp-gzdamage-in");
  // More images than predict reads at a time (5,000), so that damage can lie past a chunk.
  const uint32_t n = 7000;
  Dataset test = load_split(root, "mnist", Split::test, n);
  const std::string raw = idx_images(n, test.images);
  gzFile f = gzopen((dir + "/good.idx.gz").c_str(), "wb6");
  REQUIRE(f);
  REQUIRE(gzwrite(f, raw.data(), static_cast<unsigned>(raw.size())) == static_cast<int>(raw.size()));
  REQUIRE(gzclose(f) == Z_OK);
  const std::string gz = read_text(dir + "/good.idx.gz");
  RunResult good = run_mnistctl({"predict", "--model", run, "--input", dir + "/good.idx.gz"});
  REQUIRE(good.code == 0);
  const auto want = lines(good.out);
  REQUIRE(want.size() == n + 1);

  // Bytes flipped in the middle of the compressed data: zlib may decode past them and find
  // the damage only at the gzip check, after rows computed from spoiled pixels.
  std::string bad = gz;
  for (size_t i = bad.size() / 2; i < bad.size() / 2 + 50; ++i) bad[i] = static_cast<char>(bad[i] ^ 0x55);
  write_file(dir + "/corrupt.idx.gz", bad);
  RunResult c = run_mnistctl({"predict", "--model", run, "--input", dir + "/corrupt.idx.gz"});
  INFO(c.err);
  CHECK(c.code == 2);
  auto lc = lines(c.out);
  REQUIRE(lc.size() == 2);  // the header and one error row
  CHECK(lc[1].rfind(dir + "/corrupt.idx.gz,0,,,,,,,,,,,,", 0) == 0);
  CHECK(lc[1].find("corrupt gzip data") != std::string::npos);
  CHECK(lc[1].find("no image of it is predicted") != std::string::npos);

  // A file cut off at 80%: its whole images come out, identical to the good file's rows (the
  // chunk that holds the cut included), then the error row where it ends.
  write_file(dir + "/cut.idx.gz", gz.substr(0, gz.size() * 8 / 10));
  RunResult t = run_mnistctl({"predict", "--model", run, "--input", dir + "/cut.idx.gz"});
  INFO(t.err);
  CHECK(t.code == 2);
  auto lt = lines(t.out);
  REQUIRE(lt.size() >= 3);
  const size_t rows = lt.size() - 2;
  CHECK(rows > 5000);
  CHECK(rows < n);
  for (size_t i = 1; i <= rows; ++i) {
    auto a = fields(lt[i]), b = fields(want[i]);
    REQUIRE(a.size() == b.size());
    CHECK(std::vector<std::string>(a.begin() + 1, a.end()) == std::vector<std::string>(b.begin() + 1, b.end()));
  }
  CHECK(lt.back().rfind(dir + "/cut.idx.gz," + std::to_string(rows) + ",,,,,,,,,,,,", 0) == 0);
  CHECK(lt.back().find("truncated gzip stream") != std::string::npos);
}

TEST_CASE("predict streams a large IDX file in bounded memory and writes its output atomically") {
  std::string root = data_root("pp-stream");
  std::string run = train_mlp(root, "pp-stream-run");
  std::string dir = scratch_dir("pp-stream-in");
  // 150,000 blank images: 118 MB once inflated, about 120 kB on disk.
  const uint32_t n = 150000;
  write_blank_idx_gz(dir + "/blank.idx.gz", n);
  WARN("blank.idx.gz: " << fs::file_size(dir + "/blank.idx.gz") << " bytes for " << n << " images");
  Measured m = run_measured({"predict", "--model", run, "--input", dir + "/blank.idx.gz", "--threads", "2",
                             "--output", dir + "/p.csv"}, dir + "/stdout");
  INFO(m.err);
  REQUIRE(m.code == 0);
  WARN("predict over " << n << " images: peak RSS " << m.max_rss_mb << " MB");
  CHECK(m.max_rss_mb > 0);
  // Holding the images whole would take 118 MB more than the ~40 MB measured. Under
  // AddressSanitizer (scripts/test.sh, quarantine 8 MB) its shadow memory and allocator add
  // about 50 MB: the bound moves by that, still below what holding the images would cost.
#if defined(__SANITIZE_ADDRESS__)
  CHECK(m.max_rss_mb < 150);
#else
  CHECK(m.max_rss_mb < 100);
#endif
  std::ifstream in(dir + "/p.csv");
  int64_t rows = 0;
  std::string first, last;
  for (std::string line; std::getline(in, line); ++rows) {
    if (rows == 1) first = line;
    last = line;
  }
  CHECK(rows == n + 1);
  CHECK(first.rfind(dir + "/blank.idx.gz,0,", 0) == 0);
  CHECK(last.rfind(dir + "/blank.idx.gz," + std::to_string(n - 1) + ",", 0) == 0);

  // Killed part-way, the output file keeps its old content: rows go to a temporary file
  // that is renamed only at the end.
  write_file(dir + "/keep.csv", "old\n");
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::string exe = MNISTCTL_EXE, model = run, input = dir + "/blank.idx.gz", output = dir + "/keep.csv";
    execl(exe.c_str(), exe.c_str(), "predict", "--model", model.c_str(), "--input", input.c_str(), "--output",
          output.c_str(), "--force", static_cast<char*>(nullptr));  // keep.csv is not a prediction
    _exit(127);
  }
  const std::string tmp = dir + "/keep.csv.tmp." + std::to_string(pid);
  bool seen_rows = false;
  for (int i = 0; i < 6000 && !seen_rows; ++i) {
    std::error_code ec;
    seen_rows = fs::exists(tmp, ec) && fs::file_size(tmp, ec) > 100000;
    if (!seen_rows) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(seen_rows);  // rows were being written while it ran (streamed, not built in memory)
  CHECK(read_text(dir + "/keep.csv") == "old\n");
  fs::remove(tmp);
}

TEST_CASE("predict refuses oversized and bomb images in bounded memory naming the file and the limit") {
  std::string root = data_root("pp-bomb");
  std::string run = train_mlp(root, "pp-bomb-run");
  std::string dir = scratch_dir("pp-bomb-in");
  const std::string sig = "\x89PNG\r\n\x1a\n";
  // Declares 20000x20000 (400 megapixels) in a file of a few dozen bytes.
  {
    std::string png = sig;
    put_chunk(png, "IHDR", be32(20000) + be32(20000) + std::string("\x08\x00\x00\x00\x00", 5));
    put_chunk(png, "IDAT", zlib_of(std::string(20001, '\0')));
    put_chunk(png, "IEND", "");
    write_file(dir + "/huge.png", png);
  }
  // A 1 GiB file (sparse: no disk used) that begins like a PGM.
  write_file(dir + "/huge-file.pgm", "P5\n28 28\n255\n");
  fs::resize_file(dir + "/huge-file.pgm", uint64_t(1) << 30);
  // A 28x28 PNG (a digit) carrying a zTXt chunk that inflates to 256 MB.
  {
    std::string png = sig;
    put_chunk(png, "IHDR", be32(28) + be32(28) + std::string("\x08\x00\x00\x00\x00", 5));
    z_stream zs{};
    REQUIRE(deflateInit(&zs, 9) == Z_OK);
    std::string text = std::string("Comment") + '\0' + '\0';
    std::vector<unsigned char> zeros(1 << 20, 'a'), buf(1 << 16);
    for (int i = 0; i < 256; ++i) {
      zs.next_in = zeros.data();
      zs.avail_in = static_cast<uInt>(zeros.size());
      do {
        zs.next_out = buf.data();
        zs.avail_out = static_cast<uInt>(buf.size());
        deflate(&zs, i == 255 ? Z_FINISH : Z_NO_FLUSH);
        text.append(reinterpret_cast<char*>(buf.data()), buf.size() - zs.avail_out);
      } while (zs.avail_out == 0);
    }
    deflateEnd(&zs);
    put_chunk(png, "zTXt", text);
    std::string rows;
    for (int y = 0; y < 28; ++y) {
      rows += '\0';  // filter: none
      for (int x = 0; x < 28; ++x) rows += static_cast<char>(x >= 12 && x < 16 && y >= 4 && y < 24 ? 255 : 0);
    }
    put_chunk(png, "IDAT", zlib_of(rows));
    put_chunk(png, "IEND", "");
    write_file(dir + "/ztxt-bomb.png", png);
    WARN("ztxt-bomb.png: " << png.size() << " bytes");
  }
  // Each file and the refusal that names its limit.
  const std::pair<const char*, const char*> refusals[] = {
      {"/huge.png", ": image is 20000x20000: refused: a digit image may have at most 4096 pixels per side and 4 megapixels"},
      {"/huge-file.pgm", ": image file is 1073741824 bytes: refused (an image file may be at most 32 MiB)"}};
  for (const auto& [name, refusal] : refusals) {
    INFO(name);
    Measured m = run_measured({"predict", "--model", run, "--input", dir + name}, dir + "/out.csv");
    WARN(name << ": exit " << m.code << ", peak RSS " << m.max_rss_mb << " MB: " << m.err);
    CHECK(m.code == 2);
    CHECK(m.max_rss_mb > 0);
    CHECK(m.max_rss_mb < 200);
    CHECK(m.err.find("mnistctl: " + dir + name + ": ") == 0);
    CHECK(m.err.find(refusal) != std::string::npos);
  }
  // The text chunk is dropped (libpng's limit on ancillary chunk memory); the digit is read.
  Measured z = run_measured({"predict", "--model", run, "--input", dir + "/ztxt-bomb.png"}, dir + "/z.csv");
  WARN("ztxt-bomb.png: exit " << z.code << ", peak RSS " << z.max_rss_mb << " MB: " << z.err);
  CHECK(z.code == 0);
  CHECK(z.max_rss_mb < 200);
  CHECK(read_text(dir + "/z.csv").find(dir + "/ztxt-bomb.png,0,1,") != std::string::npos);
}

TEST_CASE("a model whose network.input is [784] or [28, 28] evaluates and predicts like one of [1, 28, 28]") {
  // train accepts any input shape with the image's 784 values; eval and predict must too.
  std::string root = data_root("pp-shapes");
  std::string dir = scratch_dir("pp-shapes-in");
  Dataset test = load_split(root, "mnist", Split::test, 1);
  write_file(dir + "/seven.pgm", pgm(28, 28, test.images.data()));
  for (const std::string shape : {"[784]", "[28, 28]"}) {
    INFO("network.input=" << shape);
    const std::string run = scratch_dir("pp-shapes-" + std::to_string(shape.size()));
    RunResult t = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out", run,
                                "--epochs", "2", "--threads", "2", "--set", "data.train_limit=6000", "--set",
                                "init.type=xavier", "--set", "network.input=" + shape});
    INFO(t.out << t.err);
    REQUIRE(t.code == 0);
    RunResult e = run_mnistctl({"eval", "--model", run, "--data-dir", root, "--threads", "2"});
    INFO(e.out << e.err);
    CHECK(e.code == 0);
    CHECK_THAT(e.out, Catch::Contains("accuracy"));
    CHECK_THAT(stdout_of({"predict", "--model", run, "--input", dir + "/seven.pgm"}),
               Catch::Contains(dir + "/seven.pgm,0,7,"));
    CHECK_THAT(stdout_of({"predict", "--model", run, "--input", dir + "/seven.pgm", "--raw"}),
               Catch::Contains(dir + "/seven.pgm,0,7,"));
    const std::string p = stdout_of({"predict", "--model", run, "--data-dir", root});
    CHECK(std::count(p.begin(), p.end(), '\n') == 10001);  // the header and a row per test image
  }
  // A model of another size is still refused, naming both sizes.
  const std::string run = scratch_dir("pp-shapes-other");
  RunResult t = run_mnistctl({"train", "--config", config_file("mlp.yaml"), "--data-dir", root, "--out", run,
                              "--epochs", "1", "--threads", "2", "--set", "data.train_limit=1000", "--set",
                              "network.input=[1, 28, 30]"});
  CHECK(t.code == 2);
  CHECK_THAT(t.err, Catch::Contains("network.input is 1x28x30"));
}
