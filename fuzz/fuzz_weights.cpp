// Fuzzes weight binding: a well-formed safetensors file whose tensors have the wrong names, shapes or dtypes,
// loaded into a small UNet / VAE / CLIP text encoder through the models' own visit() walk (load_weights).
// The result must be success or one kakusan::Error listing the problems; a crash, a sanitizer report, a huge
// allocation or another exception type is a finding.
//
// Input: one byte choosing the model ('0' CLIP text encoder, '1' VAE, '2' UNet, other bytes modulo 3) and
// the header as JSON {name: {"dtype": ..., "shape": [...]}}. The harness lays the tensors out (zeros), so
// mutations explore names, shapes and dtypes rather than byte offsets (fuzz_safetensors covers those).
// Seeds: KAKUSAN_FUZZ_WRITE_SEEDS=<dir> makes the harness write each model's correct header there.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/json_config.h"
#include "io/safetensors.h"
#include "io/weight_store.h"
#include "models/autoencoder_kl.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"
#include "nn/weights.h"

namespace {

namespace fs = std::filesystem;
using namespace kakusan;
using json = nlohmann::json;

// Small configs in the diffusers / transformers layout: every block type SD uses, few parameters.
const char* const kUnet = R"({"block_out_channels": [16, 32], "layers_per_block": 1, "attention_head_dim": 2,
  "cross_attention_dim": 16, "norm_num_groups": 8, "sample_size": 8,
  "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]})";
const char* const kVae = R"({"block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 8,
  "latent_channels": 4, "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]})";
const char* const kClip = R"({"vocab_size": 64, "hidden_size": 16, "intermediate_size": 24, "num_attention_heads": 2,
  "num_hidden_layers": 2, "max_position_embeddings": 8, "hidden_act": "quick_gelu", "eos_token_id": 2})";

constexpr size_t kMaxFileBytes = 8 << 20;

JsonConfig config(const char* text, const char* name) { return JsonConfig::parse(text, name); }

// The names and shapes a module expects, as a header JSON (the seeds).
class HeaderWriter : public WeightVisitor {
 public:
  void tensor(const std::string& name, Tensor&, const Shape& shape) override {
    header[name] = {{"dtype", "F32"}, {"shape", json(std::vector<int64_t>(shape.begin(), shape.end()))}};
  }
  json header = json::object();
};

template <typename Module>
void bind(Module module, const std::vector<fs::path>& files, DType dtype, const char* component) {
  const WeightStore store = WeightStore::open(files);
  load_weights(module, store, dtype, component);
}

void bind_model(int which, const std::vector<fs::path>& files, DType dtype) {
  switch (which) {
    case 0: return bind(ClipTextModel(ClipTextConfig::parse(config(kClip, "clip.json"))), files, dtype, "clip");
    case 1: return bind(AutoencoderKL(AutoencoderKLConfig::parse(config(kVae, "vae.json"))), files, dtype, "vae");
    default:
      return bind(UNet2DConditionModel(UNet2DConditionConfig::parse(config(kUnet, "unet.json"))), files, dtype,
                  "unet");
  }
}

template <typename Module>
void write_seed(const fs::path& dir, char tag, Module module) {
  HeaderWriter writer;
  module.visit(writer);
  std::ofstream(dir / (std::string("model_") + tag), std::ios::binary) << tag << writer.header.dump();
}

const fs::path& scratch_file() {
  static const fs::path path = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    const fs::path dir = base / ("kakusan-fuzz-weights-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / "diffusion_pytorch_model.safetensors";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* seeds = std::getenv("KAKUSAN_FUZZ_WRITE_SEEDS")) {
    fs::create_directories(seeds);
    write_seed(seeds, '0', ClipTextModel(ClipTextConfig::parse(config(kClip, "clip.json"))));
    write_seed(seeds, '1', AutoencoderKL(AutoencoderKLConfig::parse(config(kVae, "vae.json"))));
    write_seed(seeds, '2', UNet2DConditionModel(UNet2DConditionConfig::parse(config(kUnet, "unet.json"))));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool verbose = std::getenv("KAKUSAN_FUZZ_VERBOSE") != nullptr;  // prints each outcome
  if (size < 2) return 0;
  const int which = (data[0] - '0' + 300) % 3;
  const json header = json::parse(data + 1, data + size, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return 0;

  // Lay the tensors out; entries the harness cannot size are skipped (the parser's own target covers them).
  std::vector<std::pair<std::string, TensorView>> tensors;
  size_t total = 0;
  for (const auto& [name, info] : header.items()) {
    if (!info.is_object() || !info.contains("dtype") || !info["dtype"].is_string() || !info.contains("shape") ||
        !info["shape"].is_array() || info["shape"].size() > size_t(Shape::kMaxRank))
      continue;
    const auto dtype = parse_dtype(info["dtype"].get<std::string>());
    if (!dtype) continue;
    Shape shape;
    size_t numel = 1;
    bool ok = true;
    for (const json& d : info["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > kMaxFileBytes) {
        ok = false;
        break;
      }
      numel *= size_t(d.get<uint64_t>());
      if (numel > kMaxFileBytes) ok = false;
      shape.push_back(int64_t(d.get<uint64_t>()));
    }
    if (!ok || (total += numel * dtype_size(*dtype)) > kMaxFileBytes) return 0;
    tensors.push_back({name, TensorView(nullptr, *dtype, shape)});
  }
  static std::vector<std::byte> zeros(kMaxFileBytes);
  for (auto& [name, view] : tensors) view.data = zeros.data();  // contents do not matter to binding

  try {
    write_safetensors(scratch_file(), tensors);
    bind_model(which, {scratch_file()}, size % 2 ? DType::F16 : DType::F32);
    if (verbose) std::fprintf(stderr, "bound\n");
  } catch (const Error& e) {
    if (verbose) std::fprintf(stderr, "%s\n", e.what());
  }
  return 0;
}
