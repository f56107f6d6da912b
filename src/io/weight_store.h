// WeightStore: every tensor of a model component, by its diffusers state-dict name, across one or more
// safetensors files (sharded checkpoints). Legacy names found in real checkpoints are normalised here by a
// data table (see legacy_name_table()), so models only ever see today's diffusers names.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace kakusan {

class WeightStore {
 public:
  static WeightStore open(const std::vector<std::filesystem::path>& files);

  struct Found {
    const SafetensorsFile* file;
    std::string file_name;  // the name as stored in the file
  };
  // nullptr if absent. `name` is the diffusers name.
  const Found* find(const std::string& name) const;
  // All (normalised) names, sorted.
  std::vector<std::string> names() const;
  // Names a loader may leave unused without complaint (buffers that old files carry).
  static bool is_ignorable(const std::string& name);
  // Describes the store for messages: "unet/diffusion_pytorch_model.safetensors" or "N files in DIR".
  std::string describe() const;

  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, Found> index_;
};

// Old name fragment -> diffusers name fragment (e.g. the VAE mid-block attention's "query" -> "to_q").
const std::vector<std::pair<std::string, std::string>>& legacy_name_table();
std::string normalize_weight_name(const std::string& name);

}  // namespace kakusan
