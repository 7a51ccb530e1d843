// The layer registry, as Caffe's LayerRegistry: each layer type registers a factory by name
// from its own source file (REGISTER_LAYER at the bottom of layers/<type>.cpp), and the
// network builder asks for layers by the `type` field of the YAML. An unknown type is
// answered with the list of known ones.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/layer.h"

namespace mnistctl {

using LayerFactory = std::function<std::unique_ptr<Layer>(const LayerSpec&)>;

class LayerRegistry {
 public:
  static void add(const std::string& type, LayerFactory factory);
  // Throws UsageError at the layer's `type` field for an unknown type.
  static std::unique_ptr<Layer> create(const LayerSpec& spec);
  static std::vector<std::string> types();  // sorted
};

struct LayerRegisterer {
  LayerRegisterer(const std::string& type, LayerFactory factory) {
    LayerRegistry::add(type, std::move(factory));
  }
};

}  // namespace mnistctl

#define REGISTER_LAYER(type_name, Class)                                      \
  static ::mnistctl::LayerRegisterer g_layer_registerer_##Class(              \
      type_name, [](const ::mnistctl::LayerSpec& s) -> std::unique_ptr<::mnistctl::Layer> { \
        return std::make_unique<Class>(s);                                    \
      })
