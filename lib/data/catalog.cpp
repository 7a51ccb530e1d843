// The dataset catalog (see catalog.h).
//
// MNIST checksums are the widely published official SHA-256 of the original files. The
// Fashion-MNIST upstream checksums are the published ones for the files at the Zalando S3
// site (sizes 24 or 23 bytes larger than Debian's: the gzip FNAME field); the Debian forms were
// computed from dataset-fashion-mnist 0.0~git20200523.55506a9-1 (whose decompressed IDX data
// equals upstream's).
#include "data/catalog.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/closest.h"
#include "core/error.h"
#include "core/fs.h"

namespace mnistctl {

bool DataFile::accepts(const std::string& sha, int64_t size) const {
  if (sha == sha256 && size == bytes) return true;
  for (const auto& c : also_accepted)
    if (sha == c.sha256 && size == c.bytes) return true;
  return false;
}

int64_t DataFile::max_bytes() const {
  int64_t m = bytes;
  for (const auto& c : also_accepted) m = std::max(m, c.bytes);
  return m;
}

namespace {

DataFile file(std::string name, std::string sha, int64_t bytes, std::vector<Checksum> also = {}) {
  DataFile f;
  f.name = std::move(name);
  f.sha256 = std::move(sha);
  f.bytes = bytes;
  f.also_accepted = std::move(also);
  return f;
}

Checksum debian(std::string sha, int64_t bytes) {
  return Checksum{std::move(sha), bytes, "Debian dataset-fashion-mnist"};
}

std::vector<DatasetInfo> make_catalog() {
  std::vector<DatasetInfo> c;

  DatasetInfo mnist;
  mnist.name = "mnist";
  mnist.class_names = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  mnist.train_images = file("train-images-idx3-ubyte.gz",
                            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422);
  mnist.train_labels = file("train-labels-idx1-ubyte.gz",
                            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881);
  mnist.test_images = file("t10k-images-idx3-ubyte.gz",
                           "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877);
  mnist.test_labels = file("t10k-labels-idx1-ubyte.gz",
                           "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542);
  mnist.mirrors = {
      "https://ossci-datasets.s3.amazonaws.com/mnist/",      // PyTorch's mirror
      "https://storage.googleapis.com/cvdf-datasets/mnist/",  // Google Cloud (CVDF) mirror
      "http://yann.lecun.com/exdb/mnist/",                    // the original; often 403 today
  };
  c.push_back(mnist);

  DatasetInfo fashion;
  fashion.name = "fashion-mnist";
  fashion.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  fashion.fills_frame = true;
  fashion.train_images =
      file("train-images-idx3-ubyte.gz",
           "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc", 26421880,
           {debian("b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7", 26421856)});
  fashion.train_labels =
      file("train-labels-idx1-ubyte.gz",
           "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc", 29515,
           {debian("0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056", 29491)});
  fashion.test_images =
      file("t10k-images-idx3-ubyte.gz",
           "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229", 4422102,
           {debian("cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa", 4422079)});
  fashion.test_labels =
      file("t10k-labels-idx1-ubyte.gz",
           "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf", 5148,
           {debian("8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05", 5125)});
  fashion.mirrors = {"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"};
  fashion.local_dirs = {"/usr/share/datasets/fashion-mnist"};  // Debian: dataset-fashion-mnist
  c.push_back(fashion);
  return c;
}

const std::vector<DatasetInfo>& catalog() {
  static const std::vector<DatasetInfo> c = make_catalog();
  return c;
}

}  // namespace

std::vector<std::string> dataset_names() {
  std::vector<std::string> n;
  for (const auto& d : catalog()) n.push_back(d.name);
  return n;
}

const DatasetInfo& find_dataset(const std::string& name) {
  for (const auto& d : catalog())
    if (d.name == name) return d;
  std::string known;
  for (const auto& n : dataset_names()) known += (known.empty() ? "" : ", ") + n;
  std::string hint = closest_match(name, dataset_names());
  throw UsageError(fmt::format("unknown dataset '{}' (known: {}){}", name, known,
                               hint.empty() ? "" : fmt::format("; did you mean '{}'?", hint)));
}

std::string dataset_dir(const std::string& data_root, const std::string& name) {
  find_dataset(name);
  std::string root = data_root.empty() ? default_data_root() : data_root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return root + "/" + name;
}

}  // namespace mnistctl
