// LoRA merging keeps its memory promise: only the weights a LoRA touches become owned copies (in the model's
// dtype); every other parameter stays a view of the file mapping. And the merge is W + scale * alpha/r * up.down.
#include <gtest/gtest.h>

#include <cmath>

#include "io/model_folder.h"
#include "io/weight_store.h"
#include "models/lora_merge.h"
#include "models/unet_2d_condition.h"
#include "support/golden.h"

namespace kakusan {
namespace {

std::filesystem::path formats(const std::string& file) {
  return std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats" / file;
}

TEST(LoraMerge, OnlyTouchedWeightsAreOwnedCopies) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path dir = *testing::golden_dir() / "tiny-sd/unet";
  const auto store =
      std::make_shared<const WeightStore>(WeightStore::open(find_weight_files(dir, "", "diffusers").files));
  const auto lora = std::make_shared<const LoraFile>(LoraFile::open(formats("lora_kohya.safetensors")));
  for (DType dtype : {DType::F32, DType::F16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const auto merged = merge_loras(store, "unet", {{lora, 0.5f}}, dtype);
    int64_t touched_bytes = 0, layers = 0;
    for (const LoraLayer& layer : lora->layers()) {
      if (layer.component != "unet") continue;
      ++layers;
      // kohya's flat name -> the diffusers weight (the test's own resolution: via the merged source's stored_as)
      bool found = false;
      for (const std::string& name : store->names()) {
        std::string flat = name.substr(0, name.size() - 7);
        for (char& c : flat) c = c == '.' ? '_' : c;
        if (name.ends_with(".weight") && flat == layer.module) {
          const WeightRef ref = *merged->get(name);
          EXPECT_FALSE(ref.mapped) << name;
          EXPECT_EQ(ref.view.dtype, dtype) << name;
          touched_bytes += ref.view.numel() * int64_t(dtype_size(dtype));
          // up . down at scale 0.5 * alpha 8 / rank 4 = 1.0, checked on element [0, 0].
          const Tensor up = lora->file().load_f32(layer.key + ".lora_up.weight");
          const Tensor down = lora->file().load_f32(layer.key + ".lora_down.weight");
          double delta = 0;
          const int64_t row = down.numel() / down.dim(0);
          for (int64_t r = 0; r < down.dim(0); ++r) delta += double(up.f32()[r]) * down.f32()[r * row];
          const Tensor w = Tensor::copy_of(store->get(name)->view).to_f32();
          const Tensor m = Tensor::copy_of(ref.view).to_f32();
          EXPECT_NEAR(m.f32()[0], w.f32()[0] + delta, dtype == DType::F16 ? 2e-3 : 1e-6) << name;
          found = true;
        }
      }
      EXPECT_TRUE(found) << layer.key;
    }
    EXPECT_EQ(layers, 19);
    UNet2DConditionModel unet(UNet2DConditionConfig::parse(JsonConfig::load(dir / "config.json")));
    WeightLoader loader(*merged, DType::F32);
    unet.visit(loader);
    loader.finish("unet");
    // float32 model: the merged copies are the only owned bytes (f16 copies are widened by the loader).
    if (dtype == DType::F32) {
      EXPECT_EQ(loader.owned_bytes(), touched_bytes);
    }
    EXPECT_GT(loader.mapped_bytes(), 10 * touched_bytes) << "the rest stays mapped";
  }
}

}  // namespace
}  // namespace kakusan
