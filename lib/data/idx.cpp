// IDX reader (see idx.h).
#include "data/idx.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "core/huge_pages.h"
#include "data/byte_reader.h"

namespace mnistctl {
namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

const char* kind_name(int ndims) { return ndims == 3 ? "images" : "labels"; }

// Reads and checks the header of an IDX file of uint8 with `ndims` dimensions; returns the
// extents (their product within kIdxMaxBytes).
std::vector<int64_t> read_header_only(ByteReader& in, int ndims) {
  const std::string& path = in.path();
  const uint32_t want_magic = 0x00000800u | static_cast<uint32_t>(ndims);
  const char* what = ndims == 3 ? "(count, rows, cols)" : "(count)";

  uint8_t head[16];
  size_t got = in.read(head, 4);
  if (got < 4) in.throw_if_cut_off();
  if (got < 4)
    throw UsageError(fmt::format("{}: too short for an IDX file ({} bytes, the header alone is {})",
                                 path, got, 4 + 4 * ndims));
  uint32_t magic = be32(head);
  if ((magic & 0xFFFFFF00u) != 0x00000800u)
    throw UsageError(fmt::format(
        "{}: bad magic 0x{:08x}: not an IDX file of uint8 {} (expected 0x{:08x})", path, magic,
        kind_name(ndims), want_magic));
  int file_ndims = static_cast<int>(magic & 0xFF);
  if (file_ndims != ndims)
    throw UsageError(fmt::format(
        "{}: IDX header declares {} dimensions, expected {} {} for {} (magic 0x{:08x})", path,
        file_ndims, ndims, what, kind_name(ndims), want_magic));
  got = in.read(head + 4, static_cast<size_t>(4 * ndims));
  if (got < static_cast<size_t>(4 * ndims)) in.throw_if_cut_off();
  if (got < static_cast<size_t>(4 * ndims))
    throw UsageError(fmt::format("{}: truncated IDX header ({} of {} bytes)", path, 4 + got,
                                 4 + 4 * ndims));

  std::vector<int64_t> dims;
  int64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    int64_t v = be32(head + 4 + 4 * d);
    if (v == 0)
      throw UsageError(fmt::format("{}: IDX dimension {} {} is 0: the file holds no data", path,
                                   d, what));
    dims.push_back(v);
    total *= v;  // each factor < 2^32 and ndims <= 3, but check the bound step by step
    if (total > kIdxMaxBytes)
      break;
  }
  if (static_cast<int>(dims.size()) < ndims || total > kIdxMaxBytes) {
    std::string decl;
    for (int d = 0; d < ndims; ++d) decl += (d ? "x" : "") + std::to_string(be32(head + 4 + 4 * d));
    throw UsageError(fmt::format(
        "{}: IDX header declares {} {} {}, more than the {} GiB an IDX file may hold: refused",
        path, kind_name(ndims), decl, what, kIdxMaxBytes >> 30));
  }
  return dims;
}

int64_t element_count(const std::vector<int64_t>& dims) {
  int64_t total = 1;
  for (int64_t d : dims) total *= d;  // within kIdxMaxBytes (read_header_only)
  return total;
}

// "6 images of 28x28" / "6 labels": what the extents declare, for messages.
std::string idx_declared(const std::vector<int64_t>& dims) {
  std::string decl = fmt::format("{} {}", dims[0], kind_name(static_cast<int>(dims.size())));
  if (dims.size() == 3) decl += fmt::format(" of {}x{}", dims[1], dims[2]);
  return decl;
}

}  // namespace

std::vector<int64_t> read_idx_header(ByteReader& in, int ndims) {
  std::vector<int64_t> dims = read_header_only(in, ndims);
  if (in.gzip()) return dims;
  // Raw: the file size is known, so check it before anything is allocated.
  const int64_t total = element_count(dims);
  const int64_t have = in.file_size() - (4 + 4 * ndims);
  if (have < total)
    throw UsageError(fmt::format(
        "{}: truncated: the header declares {} ({} bytes) but the file holds only {} bytes of "
        "data", in.path(), idx_declared(dims), total, have));
  if (have > total)
    throw UsageError(fmt::format(
        "{}: {} bytes of trailing data after the {} the header declares", in.path(), have - total,
        idx_declared(dims)));
  return dims;
}

namespace {

// The header, then the elements; returns the extents and fills `data`.
std::vector<int64_t> read_idx(const std::string& path, int ndims, std::vector<uint8_t>& data) {
  ByteReader in(path);
  std::vector<int64_t> dims = read_idx_header(in, ndims);
  const int64_t total = element_count(dims);
  const int64_t header = 4 + 4 * ndims;
  const std::string decl = idx_declared(dims);

  data.clear();
  if (!in.gzip()) {
    reserve_on_huge_pages(data, static_cast<size_t>(total));
    data.resize(static_cast<size_t>(total));
    if (in.read(data.data(), data.size()) != data.size())
      throw UsageError(fmt::format("{}: read failed (file changed while reading?)", path));
    return dims;
  }

  // Gzip: grow the buffer only as real data arrives. The trailer's size is only a hint, so
  // the reservation is also bounded by what deflate can expand the file to (at most ~1032:1).
  int64_t hint = std::min({total, std::max<int64_t>(in.size_hint() - header, 0), in.file_size() * 1032});
  reserve_on_huge_pages(data, static_cast<size_t>(hint));
  int64_t have = 0;
  const int64_t chunk = 4 << 20;
  while (have < total) {
    int64_t want = std::min(chunk, total - have);
    data.resize(static_cast<size_t>(have + want));
    int64_t n = static_cast<int64_t>(in.read(data.data() + have, static_cast<size_t>(want)));
    have += n;
    if (n < want) in.throw_if_cut_off();
    if (n < want)
      throw UsageError(fmt::format(
          "{}: truncated: the header declares {} ({} bytes) but the decompressed data holds "
          "only {} bytes", path, decl, total, have));
  }
  // One byte past the declared data tells trailing data from the stream's end (reaching the
  // end also runs the gzip CRC check): nothing is ever inflated past header + declared size.
  uint8_t extra;
  if (in.read(&extra, 1) > 0)
    throw UsageError(fmt::format(
        "{}: trailing data after the {} the header declares (the file inflates past its declared size)",
        path, decl));
  return dims;
}

}  // namespace

std::vector<int64_t> read_idx_header(const std::string& path, int ndims) {
  if (ndims != 1 && ndims != 3) throw std::logic_error("read_idx_header: ndims must be 1 or 3");
  ByteReader in(path);
  return read_header_only(in, ndims);
}

IdxImages read_idx_images(const std::string& path) {
  IdxImages out;
  auto dims = read_idx(path, 3, out.pixels);
  out.count = dims[0];
  out.rows = dims[1];
  out.cols = dims[2];
  return out;
}

std::vector<uint8_t> read_idx_labels(const std::string& path, int num_classes) {
  if (num_classes < 1 || num_classes > 256)
    throw UsageError(fmt::format("{}: number of classes must be 1..256, got {}", path, num_classes));
  std::vector<uint8_t> labels;
  read_idx(path, 1, labels);
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= num_classes)
      throw UsageError(fmt::format(
          "{}: label {} at index {} is not below the number of classes ({})", path,
          int(labels[i]), i, num_classes));
  return labels;
}

}  // namespace mnistctl
