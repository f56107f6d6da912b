#include "models/checkpoint_convert.h"

#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "io/checkpoint_tables.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "models/autoencoder_kl.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"

namespace kakusan {

namespace fs = std::filesystem;

namespace {

// The names and shapes a model of `config` expects, in walk order.
class ExpectedNames : public WeightVisitor {
 public:
  void tensor(const std::string& name, Tensor&, const Shape& shape) override { list.emplace_back(name, shape); }
  std::vector<std::pair<std::string, Shape>> list;
};

template <typename Model, typename Config>
std::vector<std::pair<std::string, Shape>> expected_names(const JsonConfig& config) {
  Model model(Config::parse(config));
  ExpectedNames names;
  model.visit(names);
  return names.list;
}

// Tensors to write: views of mappings, or owned conversions kept alive in `owned`.
struct TensorList {
  std::vector<std::pair<std::string, TensorView>> views;
  std::vector<Tensor> owned;

  void add(std::string name, const TensorView& view, std::optional<DType> dtype) {
    if (!dtype || *dtype == view.dtype || !is_float(view.dtype)) {
      views.emplace_back(std::move(name), view);
      return;
    }
    Tensor t = Tensor::empty(view.shape, *dtype);
    convert_into(view, t.view());
    owned.push_back(std::move(t));
    views.emplace_back(std::move(name), owned.back().view());
  }
};

template <typename Model, typename Config>
void write_component(const ComponentSource& source, const fs::path& dir, const char* file, std::optional<DType> dtype,
                     const char* component) {
  fs::create_directories(dir);
  TensorList tensors;
  const auto expected = expected_names<Model, Config>(source.config);
  tensors.owned.reserve(expected.size());
  for (const auto& [name, shape] : expected) {
    const std::optional<WeightRef> ref = source.weights->get(name);
    KK_CHECK(ref, component, ": ", source.weights->describe(), " has no tensor for '", name, "'");
    KK_CHECK(ref->view.shape == shape, component, ": ", ref->describe(name), " is ", ref->view.shape.str(),
             ", the config implies ", shape.str());
    tensors.add(name, ref->view, dtype);
  }
  write_safetensors(dir / file, tensors.views);
  std::ofstream(dir / "config.json") << source.config.json().dump(2) << "\n";
}

}  // namespace

void convert_single_file_to_folder(const SingleFileCheckpoint& ckpt, const fs::path& out, std::optional<DType> dtype) {
  KK_CHECK(!fs::exists(out), out.string(), " already exists (convert writes a new folder)");
  const fs::path tokenizer = ckpt.tokenizer_dir();
  const fs::path temp = out.parent_path() / (out.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(temp);
  try {
    write_component<UNet2DConditionModel, UNet2DConditionConfig>(ckpt.unet(), temp / "unet",
                                                                  "diffusion_pytorch_model.safetensors", dtype, "unet");
    write_component<AutoencoderKL, AutoencoderKLConfig>(ckpt.vae(), temp / "vae", "diffusion_pytorch_model.safetensors",
                                                        dtype, "vae");
    write_component<ClipTextModel, ClipTextConfig>(ckpt.text_encoder(), temp / "text_encoder", "model.safetensors",
                                                   dtype, "text_encoder");
    fs::create_directories(temp / "scheduler");
    std::ofstream(temp / "scheduler/scheduler_config.json") << ckpt.scheduler_config().json().dump(2) << "\n";
    fs::create_directories(temp / "tokenizer");
    for (const fs::directory_entry& entry : fs::directory_iterator(tokenizer))
      if (entry.is_regular_file()) fs::copy_file(entry.path(), temp / "tokenizer" / entry.path().filename());
    std::ofstream(temp / "model_index.json") << stable_diffusion_model_index("0.29.2", ckpt.scheduler_class()).dump(2) << "\n";
    fs::rename(temp, out);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temp, ignored);
    throw;
  }
}

void convert_folder_to_single_file(const fs::path& folder_path, const fs::path& out, std::optional<DType> dtype) {
  const ModelFolder folder = ModelFolder::open(folder_path);
  TensorList tensors;
  std::vector<WeightStore> stores;
  stores.reserve(3);  // views borrow the stores' mappings
  auto add_component = [&](const char* name, const ComponentLayout& layout) {
    stores.push_back(WeightStore::open(folder.weight_files(name).files));
    for (const std::string& diffusers_name : stores.back().names()) {
      const std::optional<OriginalName> original = original_name(layout, diffusers_name);
      KK_CHECK(original, folder_path.string(), "/", name, ": tensor '", diffusers_name,
               "' has no place in the single-file layout");
      TensorView view = stores.back().get(diffusers_name)->view;
      if (original->rank != 0) {
        Shape shape = view.shape;
        while (shape.rank() < original->rank) shape.push_back(1);
        view = view.reshape(shape);
      }
      tensors.add(original->name, view, dtype);
    }
  };
  add_component("unet", ldm_unet_layout());
  add_component("vae", ldm_vae_layout());
  const JsonConfig text_config = folder.load_config("text_encoder");
  if (text_config.get<std::string>("hidden_act", "quick_gelu") != "gelu") {
    add_component("text_encoder", ldm_clip_layout());
  } else {
    // OpenCLIP: q, k, v projections fused row-wise into in_proj_weight / in_proj_bias.
    const ClipTextConfig config = ClipTextConfig::parse(text_config);
    const WeightStore& store = stores.emplace_back(WeightStore::open(folder.weight_files("text_encoder").files));
    const ComponentLayout layout = ldm_open_clip_layout(config.num_hidden_layers);
    for (const std::string& name : store.names()) {
      const size_t at = name.find(".self_attn.q_proj.");
      if (name.find(".self_attn.k_proj.") != std::string::npos || name.find(".self_attn.v_proj.") != std::string::npos)
        continue;
      if (at != std::string::npos) {
        const std::string layer = name.substr(0, at), kind = name.substr(at + 18);  // "weight" / "bias"
        const std::string fused = layer + ".self_attn.in_proj_" + kind;
        std::vector<TensorView> parts;
        for (const char* p : {".self_attn.q_proj.", ".self_attn.k_proj.", ".self_attn.v_proj."}) {
          const std::optional<WeightRef> ref = store.get(layer + p + kind);
          KK_CHECK(ref, folder_path.string(), "/text_encoder: no '", layer, p, kind, "' to fuse");
          parts.push_back(ref->view);
        }
        Shape shape = parts[0].shape;
        shape[0] *= 3;
        Tensor joined = Tensor::empty(shape, dtype.value_or(parts[0].dtype));
        const int64_t rows = parts[0].shape[0];
        for (int i = 0; i < 3; ++i) convert_into(parts[i], joined.view().narrow(0, i * rows, rows));
        tensors.owned.push_back(std::move(joined));
        tensors.views.emplace_back(original_name(layout, fused)->name, tensors.owned.back().view());
        continue;
      }
      const std::optional<OriginalName> original = original_name(layout, name);
      KK_CHECK(original, folder_path.string(), "/text_encoder: tensor '", name,
               "' has no place in the OpenCLIP layout");
      tensors.add(original->name, store.get(name)->view, dtype);
    }
  }
  write_safetensors(out, tensors.views);
}

}  // namespace kakusan
