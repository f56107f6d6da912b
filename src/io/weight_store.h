// WeightStore: the weight source of a diffusers folder. Every tensor of a model component, by its diffusers
// state-dict name, across one or more safetensors files (sharded checkpoints). Legacy names found in real
// checkpoints are normalised here by a data table (see legacy_name_table()), so models only ever see today's
// diffusers names. Views borrow the files' mappings (zero copy), except tensors the file stores misaligned,
// which SafetensorsFile has copied into owned memory.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/weight_source.h"

namespace kakusan {

class WeightStore : public WeightSource {
 public:
  static WeightStore open(const std::vector<std::filesystem::path>& files);

  struct Found {
    const SafetensorsFile* file;
    std::string file_name;  // the name as stored in the file
  };
  // nullptr if absent. `name` is the diffusers name.
  const Found* find(const std::string& name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }

  std::optional<WeightRef> get(const std::string& name) const override;
  // All (normalised) names, sorted.
  std::vector<std::string> names() const override;
  std::vector<std::shared_ptr<const MappedFile>> mapped_files() const override;
  // "unet/diffusion_pytorch_model.safetensors" or "N files in DIR".
  std::string describe() const override;

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, Found> index_;
};

// Old name fragment -> diffusers name fragment (e.g. the VAE mid-block attention's "query" -> "to_q").
const std::vector<std::pair<std::string, std::string>>& legacy_name_table();
std::string normalize_weight_name(const std::string& name);

}  // namespace kakusan
