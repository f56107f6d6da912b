#include "single_file_builder.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "io/weight_store.h"
#include "support/golden.h"

namespace kakusan::testing {

std::filesystem::path single_file_map(const std::string& model) {
  return std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats" / ("single_file_" + model + ".json");
}

void build_single_file(const std::string& model, const std::filesystem::path& out) {
  const std::filesystem::path root = *golden_dir() / model;
  std::ifstream in(single_file_map(model));
  const nlohmann::json map = nlohmann::json::parse(in);
  std::map<std::string, WeightStore> stores;
  stores.emplace("unet", WeightStore::open({root / "unet/diffusion_pytorch_model.safetensors"}));
  stores.emplace("vae", WeightStore::open({root / "vae/diffusion_pytorch_model.safetensors"}));
  stores.emplace("text_encoder", WeightStore::open({root / "text_encoder/model.safetensors"}));
  std::vector<Tensor> owned;  // outlives `tensors`
  owned.reserve(map["tensors"].size());
  std::vector<std::pair<std::string, TensorView>> tensors;
  for (const nlohmann::json& entry : map["tensors"]) {
    const std::vector<int64_t> dims = entry["shape"].get<std::vector<int64_t>>();
    const Shape shape(dims.begin(), dims.end());
    Tensor t = Tensor::zeros(shape);
    size_t offset = 0;
    for (const std::string& from : entry["from"].get<std::vector<std::string>>()) {
      const WeightRef ref = *stores.at(entry["component"].get<std::string>()).get(from);
      const Tensor part = Tensor::copy_of(ref.view);
      std::memcpy(static_cast<std::byte*>(t.data()) + offset, part.data(), part.nbytes());
      offset += part.nbytes();
    }
    owned.push_back(std::move(t));
    tensors.emplace_back(entry["name"].get<std::string>(), owned.back().view());
  }
  write_safetensors(out, tensors);
}

}  // namespace kakusan::testing
