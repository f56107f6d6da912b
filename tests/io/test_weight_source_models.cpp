// The golden kit's tiny models through the weight sources: every parameter bound to exactly the file's
// tensor (zero copy where the dtype matches), and the same models from single-file-style layouts (renamed
// tensors, VAE attention 1x1 convolutions, fused attention projections) equal, bit for bit, the models
// loaded from the diffusers files.
#include <gtest/gtest.h>

#include <cstring>

#include "io/json_config.h"
#include "io/model_folder.h"
#include "io/weight_rename.h"
#include "io/weight_split.h"
#include "io/weight_store.h"
#include "models/autoencoder_kl.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"
#include "scratch_dir.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::golden_dir;
using testing::ScratchDir;

// Every parameter of a module, by name.
class Parameters : public WeightVisitor {
 public:
  void tensor(const std::string& name, Tensor& param, const Shape&) override { list.push_back({name, &param}); }
  std::vector<std::pair<std::string, const Tensor*>> list;
};

template <typename Model>
Parameters parameters_of(Model& model) {
  Parameters p;
  model.visit(p);
  return p;
}

::testing::AssertionResult same_bytes(const Tensor& got, const TensorView& want) {
  if (got.dtype() != want.dtype || !(got.shape() == want.shape))
    return ::testing::AssertionFailure() << dtype_name(got.dtype()) << " " << got.shape().str() << " vs "
                                         << dtype_name(want.dtype) << " " << want.shape.str();
  const Tensor dense = Tensor::copy_of(want);
  if (std::memcmp(got.data(), dense.data(), dense.nbytes()) != 0)
    return ::testing::AssertionFailure() << "values differ";
  return ::testing::AssertionSuccess();
}

// Two instances of the same model hold bit-identical parameters.
template <typename Model>
void expect_same_parameters(Model& got, Model& want) {
  const Parameters g = parameters_of(got), w = parameters_of(want);
  ASSERT_EQ(g.list.size(), w.list.size());
  for (size_t i = 0; i < g.list.size(); ++i) {
    ASSERT_EQ(g.list[i].first, w.list[i].first);
    EXPECT_TRUE(same_bytes(*g.list[i].second, *w.list[i].second)) << g.list[i].first;
  }
}

template <typename Model, typename Config>
Model model_for(const std::filesystem::path& dir) {
  return Model(Config::parse(JsonConfig::load(dir / "config.json")));
}

// Each parameter is the file's tensor of its name; a float32 file's parameters are views of its mapping.
template <typename Model, typename Config>
void check_binds_the_file(const std::filesystem::path& dir, const char* library) {
  SCOPED_TRACE(dir.string());
  const WeightStore store = WeightStore::open(find_weight_files(dir, "", library).files);
  Model model = model_for<Model, Config>(dir);
  WeightLoader loader(store, DType::F32);
  model.visit(loader);
  loader.finish("model");
  EXPECT_EQ(loader.owned_bytes(), 0) << "float32 files load without a copy";
  int64_t bytes = 0;
  for (const auto& [name, param] : parameters_of(model).list) {
    const WeightRef ref = *store.get(name);
    EXPECT_EQ(param->data(), ref.view.data) << name << " is not the file's memory";
    EXPECT_TRUE(same_bytes(*param, ref.view)) << name;
    bytes += int64_t(param->nbytes());
  }
  EXPECT_EQ(loader.mapped_bytes(), bytes);
  // And the model's own load() (the folder path) binds the same values.
  Model loaded = Model::load(dir);
  expect_same_parameters(loaded, model);
}

TEST(WeightSourceModels, TinyGoldenModelsBindTheirFilesZeroCopy) {
  KK_REQUIRE_GOLDEN();
  for (const char* model : {"tiny-sd", "tiny-sd-v"}) {
    const std::filesystem::path root = *golden_dir() / model;
    check_binds_the_file<UNet2DConditionModel, UNet2DConditionConfig>(root / "unet", "diffusers");
    check_binds_the_file<AutoencoderKL, AutoencoderKLConfig>(root / "vae", "diffusers");
    check_binds_the_file<ClipTextModel, ClipTextConfig>(root / "text_encoder", "transformers");
  }
  check_binds_the_file<AutoencoderKL, AutoencoderKLConfig>(*golden_dir() / "tiny-vae-alt", "diffusers");
}

// The original (CompVis) layout of a VAE inside a single-file checkpoint: every name under
// "first_stage_model.", the mid-block attention as 1x1 convolutions named q / k / v / proj_out / norm.
// (Only the attention is renamed here; the other blocks' tables are the single-file loader's.)
std::vector<WeightRename> single_file_vae_rules() {
  std::vector<WeightRename> rules;
  const std::pair<const char*, const char*> layers[] = {
      {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"}, {"proj_out", "to_out.0"}};
  for (const auto& [original, diffusers] : layers) {
    rules.push_back({str_cat("first_stage_model.*.mid.attn_1.", original, ".weight"),
                     str_cat("*.mid_block.attentions.0.", diffusers, ".weight"), 2});
    rules.push_back({str_cat("first_stage_model.*.mid.attn_1.", original, ".bias"),
                     str_cat("*.mid_block.attentions.0.", diffusers, ".bias")});
  }
  rules.push_back({"first_stage_model.*.mid.attn_1.norm.weight", "*.mid_block.attentions.0.group_norm.weight"});
  rules.push_back({"first_stage_model.*.mid.attn_1.norm.bias", "*.mid_block.attentions.0.group_norm.bias"});
  rules.push_back({"first_stage_model.*", "*"});
  return rules;
}

// The diffusers name's original counterpart (the inverse of the table above), and its stored shape.
std::string original_vae_name(std::string name) {
  const std::pair<const char*, const char*> parts[] = {{".to_q.", ".q."}, {".to_k.", ".k."}, {".to_v.", ".v."},
                                                       {".to_out.0.", ".proj_out."}, {".group_norm.", ".norm."}};
  const std::string attention = ".mid_block.attentions.0.";
  const size_t at = name.find(attention);
  if (at != std::string::npos) {
    name.replace(at, attention.size(), ".mid.attn_1.");
    for (const auto& [modern, original] : parts) {
      const size_t p = name.find(modern);
      if (p != std::string::npos) name.replace(p, std::string(modern).size(), original);
    }
  }
  return "first_stage_model." + name;
}

TEST(WeightSourceModels, VaeFromRenamedSingleFileLayoutEqualsTheFileLoad) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path vae_dir = *golden_dir() / "tiny-sd/vae";
  const SafetensorsFile original = SafetensorsFile::open(vae_dir / "diffusion_pytorch_model.safetensors");
  ScratchDir dir;
  std::vector<std::pair<std::string, TensorView>> tensors;
  int reshaped = 0;
  for (const SafetensorsFile::Entry& e : original.entries()) {
    TensorView view = original.view(e.name);
    const std::string name = original_vae_name(e.name);
    if (view.rank() == 2 && name.find(".mid.attn_1.") != std::string::npos) {
      view = view.reshape({view.shape[0], view.shape[1], 1, 1});  // stored as a 1x1 convolution
      ++reshaped;
    }
    tensors.emplace_back(name, view);
  }
  ASSERT_EQ(reshaped, 8);  // encoder + decoder, 4 projections each
  const Tensor unrelated = Tensor::zeros({2});
  tensors.emplace_back("model.diffusion_model.out.2.bias", unrelated.view());  // another component's tensor
  write_safetensors(dir / "model.safetensors", tensors);

  const RenamedSource source(std::make_shared<WeightStore>(WeightStore::open({dir / "model.safetensors"})),
                             single_file_vae_rules(), RenamedSource::Unmatched::Drop);
  AutoencoderKL renamed = model_for<AutoencoderKL, AutoencoderKLConfig>(vae_dir);
  WeightLoader loader(source, DType::F32);
  renamed.visit(loader);
  loader.finish("AutoencoderKL");
  EXPECT_EQ(loader.owned_bytes(), 0) << "renames and reshapes are views of the mapping";
  AutoencoderKL from_file = AutoencoderKL::load(vae_dir);
  expect_same_parameters(renamed, from_file);
}

// A text encoder whose attention projections are fused ([3C, C] in_proj, as OpenCLIP stores them) under a
// "cond_stage_model.transformer." prefix: rename over split over file.
TEST(WeightSourceModels, TextEncoderFromFusedProjectionsEqualsTheFileLoad) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path te_dir = *golden_dir() / "tiny-sd/text_encoder";
  const ClipTextConfig config = ClipTextConfig::parse(JsonConfig::load(te_dir / "config.json"));
  const SafetensorsFile original = SafetensorsFile::open(te_dir / "model.safetensors");
  const std::string prefix = "cond_stage_model.transformer.";
  const int64_t c = config.hidden_size;

  std::vector<Tensor> fused;  // kept alive until written
  std::vector<std::pair<std::string, TensorView>> tensors;
  std::vector<WeightSplit> splits;
  for (const SafetensorsFile::Entry& e : original.entries())
    if (e.name.find("_proj.") == std::string::npos || e.name.find("out_proj") != std::string::npos)
      tensors.emplace_back(prefix + e.name, original.view(e.name));
  for (int layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string attn = str_cat("text_model.encoder.layers.", layer, ".self_attn.");
    for (const char* kind : {"weight", "bias"}) {
      const TensorView q = original.view(attn + "q_proj." + kind);
      Shape shape = q.shape;
      shape[0] = 3 * c;
      Tensor t = Tensor::empty(shape, q.dtype);
      for (int i = 0; i < 3; ++i) {
        const TensorView part = original.view(attn + "qkv"[i] + "_proj." + kind);
        std::memcpy(static_cast<char*>(t.data()) + i * part.nbytes(), part.data, part.nbytes());
      }
      const std::string fused_name = prefix + attn + "in_proj_" + kind;
      tensors.emplace_back(fused_name, t.view());
      fused.push_back(std::move(t));
      splits.push_back(WeightSplit::even(fused_name,
                                         {prefix + attn + "q_proj." + kind, prefix + attn + "k_proj." + kind,
                                          prefix + attn + "v_proj." + kind},
                                         c));
    }
  }
  ScratchDir dir;
  write_safetensors(dir / "model.safetensors", tensors);

  auto file = std::make_shared<WeightStore>(WeightStore::open({dir / "model.safetensors"}));
  auto split = std::make_shared<SplitSource>(file, splits);
  const RenamedSource source(split, {{prefix + "*", "*"}}, RenamedSource::Unmatched::Drop);
  ClipTextModel composed(config);
  load_weights(composed, source, DType::F32, "CLIPTextModel");
  ClipTextModel from_file = ClipTextModel::load(te_dir);
  expect_same_parameters(composed, from_file);
}

}  // namespace
}  // namespace kakusan
