// `mnistctl predict`: class probabilities and the predicted class, one row per image, for
// the test set (default), IDX image files, the user's own PGM/PNG digits, or folders of them.
//
// Streaming: inputs are read a chunk of images at a time (an IDX file never whole), each
// chunk goes through the network and its rows are written out before the next is read, so
// memory is bounded by the chunk whatever the input's length. Output to a file goes to a
// temporary file renamed at the end (core/atomic_file.h): the file appears complete or not
// at all. A bad input is one error row (and a line on stderr); the run goes on and exits 2 at
// the end. What each option does and the preprocessing: docs/predict.md.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "commands/commands.h"
#include "commands/output_check.h"
#include "commands/open_model.h"
#include "core/atomic_file.h"
#include "core/closest.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/progress.h"
#include "data/byte_reader.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "data/idx_stream.h"
#include "data/image.h"
#include "train/metrics.h"

namespace mnistctl {
namespace {

namespace fs = std::filesystem;

// Images per inference call: bounds the memory of a run over any number of images.
constexpr int64_t kChunkImages = 50 * kInferenceBatch;
// Error lines printed to stderr before the rest are only counted.
constexpr int kMaxErrorLines = 20;

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// --format, else the output's extension (.json, .csv), else csv; a flag that contradicts the
// extension is refused rather than writing one format under the other's name.
std::string output_format(const PredictOptions& o) {
  if (!o.format.empty() && o.format != "csv" && o.format != "json")
    throw UsageError(fmt::format("--format {}: expected csv or json", o.format));
  std::string ext = o.output.empty() ? "" : ascii_lower(fs::path(o.output).extension().string());
  std::string by_ext = ext == ".json" ? "json" : ext == ".csv" ? "csv" : "";
  if (!o.format.empty() && !by_ext.empty() && o.format != by_ext)
    throw UsageError(fmt::format("--format {} conflicts with --output {} (a {} file): drop one or "
                                 "make them agree", o.format, o.output, ext));
  if (!o.format.empty()) return o.format;
  return by_ext.empty() ? "csv" : by_ext;
}

enum class InputKind { picture, idx, not_image };

// By content, not name: PNG or PGM pictures, IDX image files (raw, or gzip: the first bytes
// are inflated to see what is inside). `why` says what a not_image file is.
InputKind sniff(const std::string& path, std::string& why) {
  unsigned char head[4] = {0, 0, 0, 0};
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) return InputKind::idx;  // the reader reports why it can't be opened
    in.read(reinterpret_cast<char*>(head), sizeof head);
  }
  if (std::memcmp(head, "\x89PNG", 4) == 0 || (head[0] == 'P' && (head[1] == '5' || head[1] == '2')))
    return InputKind::picture;
  if (head[0] == 0x1f && head[1] == 0x8b) {
    try {
      ByteReader r(path);
      if (r.read(head, 4) < 4) return InputKind::idx;  // too short: the IDX reader says so
    } catch (const Error&) {
      return InputKind::idx;  // damaged gzip: the IDX reader names the damage
    }
  }
  if (head[0] == 0 && head[1] == 0 && head[2] == 0x08 && head[3] == 0x03) return InputKind::idx;
  if (head[0] == 0 && head[1] == 0 && head[2] == 0x08 && head[3] == 0x01) {
    why = "an IDX label file, not images";
    return InputKind::not_image;
  }
  // Another IDX layout ([N, 784], [N, 1, 28, 28], float32, ...): said as such.
  const char* type = head[2] == 0x08 ? "uint8" : head[2] == 0x09 ? "int8" : head[2] == 0x0B ? "int16"
                   : head[2] == 0x0C ? "int32" : head[2] == 0x0D ? "float32" : head[2] == 0x0E ? "float64" : nullptr;
  if (head[0] == 0 && head[1] == 0 && type && head[3] >= 1 && head[3] <= 8) {
    why = fmt::format("an IDX file of {} with {} dimension{}; predict reads IDX images of uint8 with 3 "
                      "dimensions (count, rows, cols), as MNIST's own files",
                      type, int(head[3]), head[3] == 1 ? "" : "s");
    return InputKind::not_image;
  }
  why = "not a PGM (P5/P2), PNG or IDX image file";
  return InputKind::not_image;
}

bool names_are_numbers(const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] != std::to_string(i)) return false;
  return true;
}

// How predict's output starts: the CSV header, and each JSON row's first field (the array's
// first row follows its "[").
constexpr const char* kCsvHeader = "source,index";
constexpr const char* kJsonRowStart = "{\"source\":";

// An existing --output is replaced only when it holds an earlier prediction (its first bytes
// are predict's CSV header or JSON array of rows), or with --force: never a user's other file.
void check_replaceable(const std::string& path, bool force) {
  std::error_code ec;
  if (path.empty() || force || !fs::is_regular_file(path, ec)) return;  // stdout, new, or a device
  const std::string head = read_prefix(path, 64);
  const size_t first = head.find_first_not_of(" \t\r\n", 1);
  const bool csv = head.rfind(std::string(kCsvHeader) + ",", 0) == 0;
  const bool json = head.rfind("[", 0) == 0 && first != std::string::npos &&
                    (head.compare(first, 1, "]") == 0 || head.compare(first, std::strlen(kJsonRowStart), kJsonRowStart) == 0);
  if (!csv && !json)
    throw UsageError(fmt::format("--output {}: exists and is not an earlier prediction; it is left alone (give "
                                 "another --output, or --force to replace it)",
                                 path));
}

// Where the rows go: stdout as they come, or a file that appears when complete.
class Output {
 public:
  explicit Output(const std::string& path) {
    if (!path.empty()) file_ = std::make_unique<AtomicFile>(path);
  }
  void write(const std::string& s) {
    if (file_) {
      file_->write(s);
    } else if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size() || std::fflush(stdout) != 0) {
      throw RuntimeError(fmt::format("writing the predictions to stdout failed: {}", std::strerror(errno)));
    }
  }
  void commit() {
    if (file_) file_->commit();
  }
  // Whether `p` is this output's own file (its temporary one, or the file it replaces): an
  // --input folder that holds the --output is not read for it.
  bool owns(const std::string& p) const {
    if (!file_) return false;
    std::error_code ec;
    return fs::equivalent(p, file_->working_path(), ec) || fs::equivalent(p, file_->path(), ec);
  }

 private:
  std::unique_ptr<AtomicFile> file_;
};

struct Row {
  std::string source;
  int64_t index = 0;    // inside its source
  int label = -1;       // the true class (test set), -1: unknown
  std::string error;    // non-empty: an error row
  int64_t image = -1;   // its image's position in the chunk
};

class Predictor {
 public:
  Predictor(const PredictOptions& o, OpenModel& om, Output& out, const std::string& format,
            bool with_labels)
      : o_(o), net_(*om.model.net), be_(*om.backend), out_(out), json_(format == "json"),
        with_labels_(with_labels), with_errors_(!with_labels) {
    size_ = net_.input_shape().numel();
    classes_ = static_cast<int>(net_.num_classes());
    // The picture size: the model's dataset's, when the input holds one such image in any
    // shape (train accepts [784] as well as [1, 28, 28]); else the input's last two dims.
    const DatasetInfo& info = find_dataset(om.model.config.data.dataset);
    const Shape& in = net_.input_shape();
    if (size_ == info.rows * info.cols) {
      height_ = info.rows;
      width_ = info.cols;
    } else if (in.rank() >= 2 && size_ == in[in.rank() - 2] * in[in.rank() - 1]) {
      height_ = in[in.rank() - 2];
      width_ = in[in.rank() - 1];
    }
    framing_ = info.fills_frame ? Framing::item : Framing::digit;
    const std::vector<std::string>& names = info.class_names;
    if (!names_are_numbers(names)) names_ = names;
    start_ = std::chrono::steady_clock::now();
  }

  void header() {
    if (json_) {
      out_.write("[");
      return;
    }
    std::string h = kCsvHeader;
    if (with_labels_) h += names_.empty() ? ",label" : ",label,label_name";
    h += names_.empty() ? ",predicted" : ",predicted,predicted_name";
    for (int c = 0; c < classes_; ++c) h += fmt::format(",p{}", c);
    if (with_errors_) h += ",error";
    out_.write(h + "\n");
  }

  void image(const std::string& source, int64_t index, int label, const uint8_t* px,
             bool multi_image_source) {
    if (!o_.save_preprocessed.empty()) save(source, index, px, multi_image_source);
    Row r{source, index, label, "", images_};
    ++written_;
    pixels_.insert(pixels_.end(), px, px + size_);
    ++images_;
    rows_.push_back(std::move(r));
    if (images_ >= kChunkImages || static_cast<int64_t>(rows_.size()) >= kChunkImages) flush();
  }

  void error(const std::string& source, int64_t index, const std::string& message) {
    ++errors_;
    if (errors_ <= kMaxErrorLines) log_line("mnistctl: " + message);
    Row r{source, index, -1, message, -1};
    rows_.push_back(std::move(r));
    ++written_;
    if (static_cast<int64_t>(rows_.size()) >= kChunkImages) flush();
  }

  // Runs the pending images through the network and writes the pending rows, in order.
  void flush() {
    std::vector<float> probs(static_cast<size_t>(images_ * classes_));
    if (images_ > 0)
      run_inference(net_, be_, std::move(pixels_), images_, size_, kInferenceBatch,
                    [&](int64_t first, int64_t n, const float* p) {
                      std::copy(p, p + n * classes_, probs.begin() + first * classes_);
                    });
    std::string s;
    for (const Row& r : rows_) format_row(r, r.image >= 0 ? probs.data() + r.image * classes_ : nullptr, s);
    out_.write(s);
    done_ += images_;
    rows_.clear();
    pixels_.clear();
    images_ = 0;
    progress_.update(done_, "images");
  }

  void picture(const std::string& path) {
    std::vector<uint8_t> px;
    try {
      if (o_.raw) {
        GrayImage g = decode_gray_image(path);
        if (g.width != width_ || g.height != height_)
          throw UsageError(fmt::format("{}: image is {}x{}: --raw takes images at the model's input "
                                       "size ({}x{}) only", path, g.width, g.height, width_, height_));
        px = std::move(g.pixels);
      } else {
        if (width_ != 28 || height_ != 28)
          throw UsageError(fmt::format("{}: pictures are prepared as 28x28 images, the model expects {}",
                                       path, net_.input_shape().str()));
        px = load_digit_image(path, framing_);
      }
    } catch (const Error& e) {
      if (e.code() != kExitUsage) throw;
      error(path, 0, e.what());
      return;
    }
    image(path, 0, -1, px.data(), false);
  }

  void idx(const std::string& path) {
    int64_t at = 0;
    try {
      // Damage in compressed data shows only at the gzip check, after the rows it spoiled:
      // such a file is checked whole first, and gives no rows.
      if (const std::string bad = gzip_damage(path); !bad.empty()) {
        error(path, 0, bad + ": no image of it is predicted (the damage may lie anywhere before the check that found it)");
        return;
      }
      IdxImageStream in(path);
      if (in.rows() * in.cols() != size_)
        throw UsageError(fmt::format("{}: images are {}x{}, the model expects {}", path, in.rows(),
                                     in.cols(), net_.input_shape().str()));
      std::vector<uint8_t> chunk;
      for (int64_t n; (n = in.next(kChunkImages, chunk)) > 0;) {
        for (int64_t i = 0; i < n; ++i) image(path, at + i, -1, chunk.data() + i * size_, true);
        at += n;
      }
    } catch (const Error& e) {
      if (e.code() != kExitUsage) throw;
      error(path, at, e.what());
    }
  }

  void file(const std::string& path) {
    std::string why;
    InputKind k = sniff(path, why);
    if (k == InputKind::picture) picture(path);
    else if (k == InputKind::idx) idx(path);
    else error(path, 0, fmt::format("{}: {}", path, why));
  }

  // A folder's regular files, sorted by name; those that are not images by content, and
  // sub-folders, are skipped and listed on stderr.
  void folder(const std::string& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      names.push_back(it->path().filename().string());
    if (ec) {
      error(dir, 0, fmt::format("{}: cannot list the folder: {}", dir, ec.message()));
      return;
    }
    std::sort(names.begin(), names.end());
    std::vector<std::string> skipped;
    int64_t used = 0;
    for (const auto& name : names) {
      const std::string path = (fs::path(dir) / name).string();
      if (out_.owns(path)) continue;  // predict's own output, not an input
      std::string why;
      if (!fs::is_regular_file(path, ec) || sniff(path, why) == InputKind::not_image) {
        skipped.push_back(name);
        continue;
      }
      ++used;
      file(path);
    }
    if (!skipped.empty()) {
      std::string list;
      for (size_t i = 0; i < skipped.size() && i < 5; ++i) list += (i ? ", " : "") + skipped[i];
      if (skipped.size() > 5) list += ", ...";
      log_line(fmt::format("mnistctl: {}: skipped {} of its entries (not PGM, PNG or IDX image files): {}",
                           dir, skipped.size(), list));
    }
    if (used == 0) error(dir, 0, fmt::format("{}: no PGM, PNG or IDX image files in this folder", dir));
  }

  void input(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      error(path, 0, fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
    } else if (S_ISDIR(st.st_mode)) {
      folder(path);
    } else if (!S_ISREG(st.st_mode)) {
      error(path, 0, fmt::format("{}: not a regular file", path));  // a FIFO would block
    } else {
      file(path);
    }
  }

  void test_set(Dataset& test) {
    for (int64_t i = 0; i < test.count; ++i)
      image("test", i, test.labels[static_cast<size_t>(i)], test.images.data() + i * size_, true);
  }

  // Ends the output; returns the exit code.
  int finish() {
    flush();
    if (json_) out_.write(written_ ? "\n]\n" : "]\n");
    out_.commit();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    progress_.done(fmt::format("{} image{} in {:.1f} s{}", done_, done_ == 1 ? "" : "s", secs,
                               errors_ ? fmt::format(", {} error row{}", errors_, errors_ == 1 ? "" : "s") : ""));
    if (errors_ == 0) return kExitOk;
    if (errors_ > kMaxErrorLines)
      log_line(fmt::format("mnistctl: ... and {} more errors", errors_ - kMaxErrorLines));
    log_line(fmt::format("mnistctl: {} input{} could not be read (error rows in the output)", errors_,
                         errors_ == 1 ? "" : "s"));
    return kExitUsage;
  }

 private:
  std::string name(int c) const {
    return c >= 0 && c < static_cast<int>(names_.size()) ? names_[static_cast<size_t>(c)] : std::to_string(c);
  }

  void format_row(const Row& r, const float* p, std::string& s) {
    if (json_) {
      s += fmt::format("{}\n{}{},\"index\":{}", row_json_ ? "," : "", kJsonRowStart, json_string(r.source), r.index);
      row_json_ = true;
      if (!p) {
        s += fmt::format(",\"error\":{}}}", json_string(r.error));
        return;
      }
      if (r.label >= 0) {
        s += fmt::format(",\"label\":{}", r.label);
        if (!names_.empty()) s += fmt::format(",\"label_name\":{}", json_string(name(r.label)));
      }
      int pred = argmax(p, classes_);
      s += fmt::format(",\"predicted\":{}", pred);
      if (!names_.empty()) s += fmt::format(",\"predicted_name\":{}", json_string(name(pred)));
      s += ",\"probabilities\":[";
      for (int c = 0; c < classes_; ++c) s += fmt::format("{}{:.6g}", c ? "," : "", p[c]);
      s += "]}";
      return;
    }
    s += fmt::format("{},{}", csv_field(r.source), r.index);
    if (with_labels_) {
      s += fmt::format(",{}", r.label);
      if (!names_.empty()) s += "," + csv_field(name(r.label));
    }
    if (!p) {
      // Error row: the predicted and probability fields stay empty.
      s += names_.empty() ? "," : ",,";
      for (int c = 0; c < classes_; ++c) s += ",";
      s += "," + csv_field(r.error) + "\n";
      return;
    }
    int pred = argmax(p, classes_);
    s += fmt::format(",{}", pred);
    if (!names_.empty()) s += "," + csv_field(name(pred));
    for (int c = 0; c < classes_; ++c) s += fmt::format(",{:.6g}", p[c]);
    if (with_errors_) s += ",";
    s += "\n";
  }

  // DIR/<row>-<file stem>[-<index>].pgm: the row number keeps names unique and in output order.
  void save(const std::string& source, int64_t index, const uint8_t* px, bool multi) {
    std::string stem = fs::path(source).filename().string();
    for (const char* ext : {".gz", ".png", ".pgm", ".idx"})
      if (stem.size() > std::strlen(ext) && ascii_lower(stem).rfind(ext) == stem.size() - std::strlen(ext))
        stem.resize(stem.size() - std::strlen(ext));
    std::string file = fmt::format("{:06}-{}", written_, stem);
    if (multi) file += fmt::format("-{}", index);
    std::string pgm = fmt::format("P5\n{} {}\n255\n", width_, height_);
    pgm.append(reinterpret_cast<const char*>(px), static_cast<size_t>(size_));
    write_file_atomic((fs::path(o_.save_preprocessed) / (file + ".pgm")).string(), pgm);
  }

 private:
  const PredictOptions& o_;
  Network& net_;
  Backend& be_;
  Output& out_;
  bool json_, with_labels_, with_errors_;
  int64_t size_ = 0, width_ = 0, height_ = 0;
  Framing framing_ = Framing::digit;  // how pictures are framed: as the model's dataset frames its images
  int classes_ = 0;
  std::vector<std::string> names_;  // empty when the classes are the digits themselves
  std::vector<Row> rows_;
  std::vector<uint8_t> pixels_;
  int64_t images_ = 0, done_ = 0;
  int64_t written_ = 0;  // rows so far, written or pending (names the saved images)
  int64_t errors_ = 0;
  bool row_json_ = false;
  Progress progress_{"predict:", -1};
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

int run_predict(const PredictOptions& o) {
  // --dataset picks the test set scored without --input; with --input it would do nothing.
  if (!o.dataset.empty() && !o.inputs.empty())
    throw UsageError(fmt::format("--dataset {}: picks the test set that predict scores without --input; with --input "
                                 "it has no effect (leave one of them out)",
                                 o.dataset));
  const std::string format = output_format(o);
  check_output_is_not_input(o.output, o.inputs, o.model, o.checkpoint);  // before anything is made
  // An image in an --input folder is an input too, though not named.
  std::error_code ec;
  std::string why;
  if (!o.output.empty() && fs::is_regular_file(o.output, ec)) {
    const fs::path out_dir = fs::path(o.output).parent_path().empty() ? "." : fs::path(o.output).parent_path();
    for (const std::string& in : o.inputs)
      if (fs::is_directory(in, ec) && fs::equivalent(out_dir, in, ec) && sniff(o.output, why) != InputKind::not_image)
        throw UsageError(fmt::format("--output {}: is an image in the --input folder {}; give another --output",
                                     o.output, in));
  }
  check_replaceable(o.output, o.force);
  if (!o.save_preprocessed.empty()) make_dirs(o.save_preprocessed);
  Output out(o.output);  // a bad output path fails here, before any work
  OpenModel om = open_model(o.run, o.model, o.checkpoint);
  const bool test = o.inputs.empty();
  Predictor p(o, om, out, format, test);
  if (test) {
    Dataset d = load_split(o.run.data_dir, test_dataset_for(om.model, o.dataset), Split::test);
    if (d.sample_size() != om.model.net->input_shape().numel())
      throw UsageError(fmt::format("{}: the test set's images are {}x{}, the model expects {}", om.model.path,
                                   d.rows, d.cols, om.model.net->input_shape().str()));
    p.header();
    p.test_set(d);
  } else {
    p.header();
    for (const auto& path : o.inputs) p.input(path);
  }
  return p.finish();
}

}  // namespace mnistctl
