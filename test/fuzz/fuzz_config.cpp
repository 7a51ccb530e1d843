// Fuzz target: the config loader as `mnistctl train --dry-run` uses it. The input is YAML,
// optionally followed by a NUL byte and `--set` overrides, one per line; the loaded config
// is then built into a Network (shape inference), checked as train checks it, and
// summarised, which is everything a dry run does before it prints.
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "nn/network.h"
#include "train/trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  std::string yaml = in.substr(0, in.find('\0'));
  std::vector<std::string> sets;
  if (yaml.size() < in.size()) {
    std::string rest = in.substr(yaml.size() + 1);
    for (size_t pos = 0; pos <= rest.size() && sets.size() < 16;) {
      size_t nl = rest.find('\n', pos);
      if (nl == std::string::npos) nl = rest.size();
      sets.push_back(rest.substr(pos, nl - pos));
      pos = nl + 1;
    }
  }
  try {
    mnistctl::Config cfg = mnistctl::load_config_text(yaml, "fuzz.yaml", sets);
    mnistctl::Network net(cfg.network);
    mnistctl::check_trainable(cfg, net);
    (void)net.summary(cfg.train.batch_size);
  } catch (const mnistctl::Error&) {
  }
  return 0;
}
