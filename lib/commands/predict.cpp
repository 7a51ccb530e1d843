// `mnistctl predict`: class probabilities and the predicted class, one row per image, for
// the test set (default), IDX image files, or the user's own PGM/PNG digits.
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "commands/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/image.h"
#include "train/metrics.h"
#include "commands/open_model.h"

namespace mnistctl {
namespace {

struct Inputs {
  std::vector<uint8_t> pixels;
  std::vector<std::string> source;  // per image
  std::vector<int64_t> index;       // per image, inside its source
  int64_t count = 0;
};

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

enum class InputKind { picture, idx, unknown };

// By content, not name: PNG or PGM pictures, IDX image files (raw, or gzip which the IDX
// reader then checks). A file that can't be opened is left to the readers to report.
InputKind sniff(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InputKind::idx;
  unsigned char head[4] = {0};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  if (std::memcmp(head, "\x89PNG", 4) == 0 || (head[0] == 'P' && (head[1] == '5' || head[1] == '2')))
    return InputKind::picture;
  if ((head[0] == 0x1f && head[1] == 0x8b) || (head[0] == 0 && head[1] == 0 && head[2] == 0x08 && head[3] == 0x03))
    return InputKind::idx;
  return InputKind::unknown;
}

void add(Inputs& in, const std::string& source, const uint8_t* px, int64_t n, int64_t size) {
  in.pixels.insert(in.pixels.end(), px, px + n * size);
  for (int64_t i = 0; i < n; ++i) {
    in.source.push_back(source);
    in.index.push_back(i);
  }
  in.count += n;
}

}  // namespace

int run_predict(const PredictOptions& o) {
  OpenModel om = open_model(o.run, o.model, o.checkpoint);
  Backend* be = om.backend.get();
  const Model& m = om.model;
  const int64_t size = m.net->input_shape().numel();

  Inputs in;
  if (o.inputs.empty()) {
    Dataset test = load_split(o.run.data_dir, m.config.data.dataset, Split::test);
    add(in, "test", test.images.data(), test.count, test.sample_size());
  }
  for (const auto& path : o.inputs) {
    InputKind kind = sniff(path);
    if (kind == InputKind::unknown)
      throw UsageError(fmt::format("{}: not a PGM (P5/P2), PNG or IDX image file", path));
    if (kind == InputKind::picture) {
      if (size != 28 * 28)
        throw UsageError(fmt::format("{}: pictures are read as 28x28 digits, the model expects {}", path,
                                     m.net->input_shape().str()));
      std::vector<uint8_t> px = load_digit_image(path);
      add(in, path, px.data(), 1, static_cast<int64_t>(px.size()));
    } else {
      IdxImages idx = read_idx_images(path);
      if (idx.rows * idx.cols != size)
        throw UsageError(fmt::format("{}: images are {}x{}, the model expects {}", path, idx.rows, idx.cols,
                                     m.net->input_shape().str()));
      add(in, path, idx.pixels.data(), idx.count, idx.rows * idx.cols);
    }
  }

  const int classes = static_cast<int>(m.net->num_classes());
  std::string out;
  if (o.format == "csv") {
    out = "source,index,predicted";
    for (int c = 0; c < classes; ++c) out += fmt::format(",p{}", c);
    out += "\n";
  } else {
    out = "[";
  }
  run_inference(*m.net, *be, std::move(in.pixels), in.count, size, kInferenceBatch,
                [&](int64_t first, int64_t n, const float* probs) {
                  for (int64_t i = 0; i < n; ++i) {
                    const float* row = probs + i * classes;
                    size_t k = static_cast<size_t>(first + i);
                    int pred = argmax(row, classes);
                    if (o.format == "csv") {
                      out += fmt::format("{},{},{}", csv_field(in.source[k]), in.index[k], pred);
                      for (int c = 0; c < classes; ++c) out += fmt::format(",{:.6g}", row[c]);
                      out += "\n";
                    } else {
                      out += fmt::format("{}\n{{\"source\":{},\"index\":{},\"predicted\":{},\"probabilities\":[",
                                         k ? "," : "", json_string(in.source[k]), in.index[k], pred);
                      for (int c = 0; c < classes; ++c) out += fmt::format("{}{:.6g}", c ? "," : "", row[c]);
                      out += "]}";
                    }
                  }
                });
  if (o.format == "json") out += "\n]\n";
  if (o.output.empty()) {
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
      throw RuntimeError(fmt::format("writing the predictions to stdout failed: {}", std::strerror(errno)));
  } else {
    write_file_atomic(o.output, out);
  }
  return kExitOk;
}

}  // namespace mnistctl
