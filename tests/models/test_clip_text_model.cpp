// CLIPTextModel against transformers' own outputs (golden kit C.3), with the fast and the reference backend
// and every attention strategy; clip_skip against the pipeline golden; f16 weights; loading errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "attention_cases.h"
#include "model_tolerances.h"
#include "models/clip_text_model.h"
#include "support/golden.h"
#include "support/golden_manifest.h"

namespace kakusan {
namespace {

using testing::golden_dir;
using testing::open_golden;

using testing::kTextEncoderTolerance;

// Every attention strategy on the fast backend, and the reference backend.
struct BackendCase {
  const char* name;
  Backend& (*backend)();
  testing::AttentionCase attention;
};
const BackendCase kBackends[] = {
    {"cpu/full", cpu_backend, testing::kAttentionCases[0]},
    {"cpu/sliced", cpu_backend, testing::kAttentionCases[1]},
    {"cpu/flash", cpu_backend, testing::kAttentionCases[2]},
    {"cpu/auto", cpu_backend, testing::kAttentionCases[3]},
    {"reference", reference_backend, testing::kAttentionCases[3]},
};

void check_text_encoder_golden(const std::string& model_name) {
  const ClipTextModel model = ClipTextModel::load(*golden_dir() / model_name / "text_encoder");
  const SafetensorsFile golden = open_golden("components/text_encoder_" + model_name + ".safetensors");
  const TensorView input_ids = golden.view("input_ids");
  const TensorView want_hidden = golden.view("hidden_states");  // [L+1, 3, 77, H] for the first 3 prompts
  ASSERT_EQ(want_hidden.dim(0), model.config().num_hidden_layers + 1);

  for (const BackendCase& c : kBackends) {
    SCOPED_TRACE(std::string("backend ") + c.name);
    Arena arena;
    Context ctx = testing::attention_context(c.backend(), arena, c.attention);

    const Tensor last = model.forward(ctx, input_ids);
    KK_EXPECT_CLOSE(last, golden.view("last_hidden_state"), kTextEncoderTolerance, "last_hidden_state");
    KK_EXPECT_CLOSE(model.pooled_output(ctx.backend, input_ids, last), golden.view("pooler_output"),
                    kTextEncoderTolerance, "pooler_output");
    EXPECT_EQ(arena.used_bytes(), 0u) << "forward must release its activations";

    std::vector<Tensor> hidden;
    const TensorView first3 = input_ids.slice0(0, want_hidden.dim(1));
    const Tensor last3 = model.forward(ctx, first3, 0, &hidden);
    ASSERT_EQ(int64_t(hidden.size()), want_hidden.dim(0));
    for (size_t i = 0; i < hidden.size(); ++i)
      KK_EXPECT_CLOSE(hidden[i], want_hidden[int64_t(i)], kTextEncoderTolerance,
                      "hidden_states[" + std::to_string(i) + "]");
    KK_EXPECT_CLOSE(last3, golden.view("last_hidden_state").slice0(0, 3), kTextEncoderTolerance,
                    "last_hidden_state with hidden_states");
  }
}

TEST(ClipTextModelGolden, TinySd) {
  KK_REQUIRE_GOLDEN();
  check_text_encoder_golden("tiny-sd");
}

TEST(ClipTextModelGolden, TinySdV) {
  KK_REQUIRE_GOLDEN();
  check_text_encoder_golden("tiny-sd-v");
}

// Pipeline case m: prompt_embeds = [uncond "" (no clip skip), final_layer_norm(hidden_states[-2]) of the
// prompt], the prompt's ids being row 2 of the text-encoder golden.
TEST(ClipTextModelGolden, ClipSkipMatchesDiffusersEncodePrompt) {
  KK_REQUIRE_GOLDEN();
  const ClipTextModel model = ClipTextModel::load(*golden_dir() / "tiny-sd" / "text_encoder");
  const SafetensorsFile encoder_golden = open_golden("components/text_encoder_tiny-sd.safetensors");
  const SafetensorsFile pipeline_golden = open_golden("pipeline/m_clip_skip1.safetensors");
  const TensorView prompt_embeds = pipeline_golden.view("prompt_embeds");
  const TensorView ids = encoder_golden.view("input_ids");
  for (const BackendCase& c : {kBackends[0], kBackends[4]}) {
    SCOPED_TRACE(std::string("backend ") + c.name);
    Arena arena;
    Context ctx{c.backend(), arena, {}};
    KK_EXPECT_CLOSE(model.forward(ctx, ids.slice0(2, 3), 1), prompt_embeds.slice0(1, 2), kTextEncoderTolerance,
                    "clip_skip 1");
    // The same through the path that runs every layer and keeps the hidden states.
    std::vector<Tensor> hidden;
    KK_EXPECT_CLOSE(model.forward(ctx, ids.slice0(2, 3), 1, &hidden), prompt_embeds.slice0(1, 2), kTextEncoderTolerance,
                    "clip_skip 1 with hidden_states");
    KK_EXPECT_CLOSE(model.forward(ctx, ids.slice0(0, 1)), prompt_embeds.slice0(0, 1), kTextEncoderTolerance, "uncond");
  }
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           (std::string("kakusan_clip_") + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

// Writes the tiny-sd text encoder to `dir` with every tensor passed through `convert` (position_ids dropped
// or kept as the caller says).
void write_converted(const std::filesystem::path& dir, const std::function<Tensor(const TensorView&)>& convert,
                     bool keep_position_ids) {
  const std::filesystem::path source = *golden_dir() / "tiny-sd" / "text_encoder";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(source / "config.json", dir / "config.json");
  const SafetensorsFile file = SafetensorsFile::open(source / "model.safetensors");
  std::vector<Tensor> converted;
  std::vector<std::pair<std::string, TensorView>> entries;
  for (const auto& entry : file.entries()) converted.push_back(convert(file.view(entry.name)));
  size_t i = 0;
  for (const auto& entry : file.entries()) entries.emplace_back(entry.name, converted[i++].view());
  if (keep_position_ids) {
    Tensor position_ids = Tensor::empty({1, 77}, DType::I64);
    for (int64_t t = 0; t < 77; ++t) position_ids.i64()[t] = t;
    converted.push_back(std::move(position_ids));
    entries.emplace_back("text_model.embeddings.position_ids", converted.back().view());
  }
  write_safetensors(dir / "model.safetensors", entries);
}

// An f16 checkpoint (matrices used in f16 as stored, token embeddings gathered from f16) must compute what
// the f32 model computes with the same f16-rounded values.
TEST_F(TempDir, Fp16WeightsMatchF32WeightsOfTheSameValues) {
  KK_REQUIRE_GOLDEN();
  auto to_f16 = [](const TensorView& t) { return Tensor::copy_of(t).to(DType::F16); };
  auto round_through_f16 = [](const TensorView& t) { return Tensor::copy_of(t).to(DType::F16).to(DType::F32); };
  write_converted(dir_ / "f16", to_f16, /*keep_position_ids=*/true);
  write_converted(dir_ / "rounded", round_through_f16, /*keep_position_ids=*/false);
  const ClipTextModel f16 = ClipTextModel::load(dir_ / "f16", DType::F16);
  const ClipTextModel rounded = ClipTextModel::load(dir_ / "rounded", DType::F32);
  const SafetensorsFile golden = open_golden("components/text_encoder_tiny-sd.safetensors");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  const TensorView ids = golden.view("input_ids");
  const Tensor want = rounded.forward(ctx, ids);
  KK_EXPECT_CLOSE(f16.forward(ctx, ids), want, testing::Tolerance{2e-5, 1e-5}, "f16 model");
  // And the f16 model is still the same network: close to diffusers' f32 result at f16 weight precision.
  KK_EXPECT_CLOSE(want, golden.view("last_hidden_state"), testing::Tolerance{2e-2, 0}, "f16-rounded model");
}

TEST_F(TempDir, LoadingReportsEveryProblem) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path source = *golden_dir() / "tiny-sd" / "text_encoder";
  const std::filesystem::path model = dir_ / "text_encoder";
  std::filesystem::create_directories(model);
  std::filesystem::copy_file(source / "model.safetensors", model / "model.safetensors");
  // Three layers in the config, two in the file; a different intermediate size.
  std::ifstream in(source / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["num_hidden_layers"] = 3;
  config["intermediate_size"] = 40;
  std::ofstream(model / "config.json") << config.dump();
  try {
    ClipTextModel::load(model);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("text_model.encoder.layers.2.self_attn.q_proj.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("text_model.encoder.layers.0.mlp.fc1.weight: expected [40, 32]"), std::string::npos)
        << message;
  }
}

TEST(ClipTextConfig, DefaultsAndValidation) {
  const ClipTextConfig defaults = ClipTextConfig::parse(JsonConfig::parse("{}", "config.json"));
  EXPECT_EQ(defaults.hidden_size, 512);
  EXPECT_EQ(defaults.num_hidden_layers, 12);
  EXPECT_EQ(defaults.num_attention_heads, 8);
  EXPECT_EQ(defaults.hidden_act, "quick_gelu");
  EXPECT_EQ(defaults.activation(), Activation::QuickGELU);
  EXPECT_EQ(ClipTextConfig::parse(JsonConfig::parse(R"({"hidden_act": "gelu"})", "c")).activation(), Activation::GELU);
  const ClipTextConfig nested = ClipTextConfig::parse(JsonConfig::parse(
      R"({"model_type": "clip", "text_config": {"hidden_size": 64, "num_attention_heads": 4}})", "c"));
  EXPECT_EQ(nested.hidden_size, 64);
  EXPECT_THROW(ClipTextConfig::parse(JsonConfig::parse(R"({"hidden_act": "relu"})", "c")), Error);
  EXPECT_THROW(ClipTextConfig::parse(JsonConfig::parse(R"({"hidden_size": 30, "num_attention_heads": 4})", "c")),
               Error);
  EXPECT_THROW(ClipTextConfig::parse(JsonConfig::parse(R"({"num_hidden_layers": 0})", "c")), Error);
}

TEST(ClipTextModel, RejectsBadInputs) {
  KK_REQUIRE_GOLDEN();
  const ClipTextModel model = ClipTextModel::load(*golden_dir() / "tiny-sd" / "text_encoder");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  Tensor ids = Tensor::zeros({1, 77}, DType::I64);
  EXPECT_THROW(model.forward(ctx, ids, 3), Error);  // only 2 layers to skip
  EXPECT_NO_THROW(model.forward(ctx, ids, 2));      // hidden_states[-3] = the embeddings
  ids.i64()[5] = 49408;
  EXPECT_THROW(model.forward(ctx, ids), Error);
  EXPECT_THROW(model.forward(ctx, Tensor::zeros({1, 78}, DType::I64)), Error);
  EXPECT_THROW(model.forward(ctx, Tensor::zeros({1, 77})), Error);  // float ids
  EXPECT_EQ(arena.used_bytes(), 0u);
}

}  // namespace
}  // namespace kakusan
