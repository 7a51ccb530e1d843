// `mnistctl export`: a trained model as a file another runtime reads (ONNX, docs/export.md).
// Reads the checkpoint on the host (no backend), builds the graph in lib/export, writes it
// atomically, and never replaces an existing file without --force.
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "commands/commands.h"
#include "commands/output_check.h"
#include "core/closest.h"
#include "core/error.h"
#include "core/fs.h"

#ifdef MNISTCTL_HAVE_ONNX
#include "export/export_source.h"
#include "export/onnx_export.h"
#include "nn/network.h"
#endif

namespace mnistctl {

void require_export_support() {
#ifndef MNISTCTL_HAVE_ONNX
  throw UsageError("export: this mnistctl was built without ONNX export (rebuild with libonnx-dev and "
                   "libprotobuf-dev installed, -DMNISTCTL_ENABLE_ONNX=ON)");
#endif
}

int run_export(const ExportOptions& o) {
  require_export_support();
#ifndef MNISTCTL_HAVE_ONNX
  (void)o;
  return kExitUsage;  // not reached: require_export_support threw
#else
  if (o.model.empty()) throw UsageError("export: --model is required (a run folder or checkpoint file)");
  if (o.output.empty()) throw UsageError("export: --output is required (e.g. --output model.onnx)");
  std::error_code ec;
  if (std::filesystem::is_directory(o.output, ec))
    throw UsageError(fmt::format("--output {}: is a folder, expected a file name (e.g. {})", o.output,
                                 (std::filesystem::path(o.output) / "model.onnx").lexically_normal().string()));
  std::string format = o.format;
  if (format.empty()) {
    const std::string ext = ascii_lower(std::filesystem::path(o.output).extension().string());  // as predict's
    if (ext != ".onnx")
      throw UsageError(fmt::format("--output {}: cannot tell the format from the extension; add --format onnx",
                                   o.output));
    format = "onnx";
  }
  if (format != "onnx") throw UsageError(fmt::format("--format {}: expected onnx", format));
  check_output_is_not_input(o.output, {}, o.model, o.checkpoint);
  if (!o.force && std::filesystem::exists(o.output, ec))
    throw UsageError(fmt::format("{}: already exists; pass --force to replace it", o.output));

  ExportSource src = open_export_source(o.model, o.checkpoint);
  Network net(src.config.network);  // shapes and parameter names only: no backend
  OnnxExportSpec spec;
  spec.graph_name = src.config.name;
  spec.logits = o.logits;
  spec.metadata = export_metadata(src);
  std::string bytes = export_onnx(net, src.ckpt, src.checkpoint_path, spec);
  write_file_atomic(o.output, bytes);
  const std::string at = epoch_text(src);  // as the metadata gives it
  std::printf("exported %s (epoch %s, test accuracy %s) to %s: ONNX opset %d, %zu bytes\n",
              src.checkpoint_path.c_str(), at.c_str(), src.test_accuracy.c_str(), o.output.c_str(), kOnnxOpset,
              bytes.size());
  std::fflush(stdout);
  return kExitOk;
#endif
}

}  // namespace mnistctl
