#include "models/random_model.h"

#include <cmath>
#include <fstream>

#include "io/atomic_file.h"
#include "io/json_config.h"
#include "models/autoencoder_kl.h"
#include "models/autoencoder_tiny.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"

namespace kakusan {

Tensor RandomParameters::make(const std::string& name, const Shape& shape, DType dtype) {
  const size_t dot = name.rfind('.');
  const std::string module = dot == std::string::npos ? "" : name.substr(0, dot);
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.f32();
  const int64_t n = t.numel();
  auto uniform = [&](int64_t fan_in) {
    const float bound = float(1.0 / std::sqrt(double(std::max<int64_t>(fan_in, 1))));
    generator_.rand(p, n);
    for (int64_t i = 0; i < n; ++i) p[i] = (2.0f * p[i] - 1.0f) * bound;
  };
  if (shape.rank() >= 2) {
    const int64_t fan_in = shape.numel() / shape[0];  // in_features (· kernel area)
    uniform(fan_in);
    last_weight_module_ = module;
    last_fan_in_ = fan_in;
  } else if (leaf == "bias" && module == last_weight_module_) {
    uniform(last_fan_in_);
  } else {
    std::fill(p, p + n, leaf == "weight" ? 1.0f : 0.0f);  // norm scale / shift
    last_weight_module_.clear();
  }
  return dtype == DType::F32 ? std::move(t) : t.to(dtype);
}

namespace {

struct ShapeCollector : WeightVisitor {
  std::vector<std::pair<std::string, Shape>> entries;
  void tensor(const std::string& name, Tensor&, const Shape& shape) override { entries.emplace_back(name, shape); }
};

// Second pass: each parameter is generated, appended to the file, and dropped.
struct StreamingWriter : WeightVisitor {
  StreamingWriter(AtomicFile& out, uint64_t seed, DType dtype) : out(out), params(seed), dtype(dtype) {}
  void tensor(const std::string& name, Tensor& param, const Shape& shape) override {
    const Tensor t = params.make(name, shape, dtype);
    out.write(t.data(), t.nbytes());
    param = Tensor();
  }
  AtomicFile& out;
  RandomParameters params;
  DType dtype;
};

void write_json(const std::filesystem::path& path, const nlohmann::json& json) {
  AtomicFile out(path);
  out.write(json.dump(2) + "\n");
  out.commit();
}

nlohmann::json read_json(const std::filesystem::path& path) { return JsonConfig::load(path).json(); }

}  // namespace

int64_t write_random_weights(const std::function<void(WeightVisitor&)>& walk, const std::filesystem::path& file,
                             uint64_t seed, DType dtype) {
  ShapeCollector shapes;
  walk(shapes);
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  size_t offset = 0;
  for (const auto& [name, shape] : shapes.entries) {
    KK_CHECK(!header.contains(name), file.string(), ": the model names two parameters '", name, "'");
    const size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
    header[name] = {{"dtype", std::string(dtype_name(dtype))},
                    {"shape", std::vector<int64_t>(shape.begin(), shape.end())},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  AtomicFile out(file);
  out.write(length, 8);
  out.write(text);
  StreamingWriter writer(out, seed, dtype);
  walk(writer);
  out.commit();
  return int64_t(shapes.entries.size());
}

RandomModelSpec RandomModelSpec::from_path(const std::filesystem::path& path) {
  RandomModelSpec s = builtin("sd15");
  if (std::filesystem::is_directory(path)) {
    s.model_index = read_json(path / "model_index.json");
    s.unet = read_json(path / "unet" / "config.json");
    s.vae = read_json(path / "vae" / "config.json");
    s.text_encoder = read_json(path / "text_encoder" / "config.json");
    s.scheduler = read_json(path / "scheduler" / "scheduler_config.json");
    return s;
  }
  const nlohmann::json j = read_json(path);
  bool any = false;
  for (auto [key, target] : {std::pair{"model_index", &s.model_index}, std::pair{"unet", &s.unet},
                             std::pair{"vae", &s.vae}, std::pair{"text_encoder", &s.text_encoder},
                             std::pair{"scheduler", &s.scheduler}}) {
    if (!j.contains(key)) continue;
    KK_CHECK(j[key].is_object(), path.string(), ": \"", key, "\" must be a JSON object (a config)");
    *target = j[key];
    any = true;
  }
  KK_CHECK(any, path.string(), ": expected a JSON object with \"unet\", \"vae\", \"text_encoder\" and/or "
                               "\"scheduler\" configs, or a model folder");
  return s;
}

RandomModelSummary make_random_model(const RandomModelSpec& spec, const std::filesystem::path& out, DType dtype,
                                     uint64_t seed) {
  // Build every model first: a bad config fails before anything is written.
  UNet2DConditionModel unet(UNet2DConditionConfig::parse(JsonConfig(spec.unet, "unet config")));
  AutoencoderKL vae(AutoencoderKLConfig::parse(JsonConfig(spec.vae, "vae config")));
  ClipTextModel text_encoder(ClipTextConfig::parse(JsonConfig(spec.text_encoder, "text_encoder config")));

  for (const char* sub : {"unet", "vae", "text_encoder", "scheduler"}) std::filesystem::create_directories(out / sub);
  RandomModelSummary summary;
  summary.unet_tensors = write_random_weights([&](WeightVisitor& v) { unet.visit(v); },
                                              out / "unet" / "diffusion_pytorch_model.safetensors", seed, dtype);
  write_json(out / "unet" / "config.json", spec.unet);
  summary.vae_tensors = write_random_weights([&](WeightVisitor& v) { vae.visit(v); },
                                             out / "vae" / "diffusion_pytorch_model.safetensors", seed + 1, dtype);
  write_json(out / "vae" / "config.json", spec.vae);
  summary.text_encoder_tensors = write_random_weights([&](WeightVisitor& v) { text_encoder.visit(v); },
                                                      out / "text_encoder" / "model.safetensors", seed + 2, dtype);
  write_json(out / "text_encoder" / "config.json", spec.text_encoder);
  write_json(out / "scheduler" / "scheduler_config.json", spec.scheduler);
  write_json(out / "model_index.json", spec.model_index);
  return summary;
}

nlohmann::json taesd_config() {
  return nlohmann::json::parse(R"({
  "_class_name": "AutoencoderTiny", "_diffusers_version": "0.20.0.dev0", "act_fn": "relu",
  "decoder_block_out_channels": [64, 64, 64, 64], "encoder_block_out_channels": [64, 64, 64, 64],
  "force_upcast": false, "in_channels": 3, "latent_channels": 4, "latent_magnitude": 3, "latent_shift": 0.5,
  "num_decoder_blocks": [3, 3, 3, 1], "num_encoder_blocks": [1, 3, 3, 3], "out_channels": 3,
  "scaling_factor": 1.0, "upsampling_scaling_factor": 2})");
}

int64_t make_random_autoencoder_tiny(const nlohmann::json& config, const std::filesystem::path& out, DType dtype,
                                     uint64_t seed) {
  AutoencoderTiny vae(AutoencoderTinyConfig::parse(JsonConfig(config, "AutoencoderTiny config")));
  std::filesystem::create_directories(out);
  const int64_t tensors = write_random_weights([&](WeightVisitor& v) { vae.visit(v); },
                                               out / "diffusion_pytorch_model.safetensors", seed, dtype);
  write_json(out / "config.json", config);
  return tensors;
}

}  // namespace kakusan
