// --dtype bf16's plumbing: each phase's attention precision follows its component's weight dtype
// (attention_params), and the pipeline hands every phase its own — checked on a backend that records what it
// is asked.
#include <gtest/gtest.h>

#include <set>

#include "backend/registry.h"
#include "kakusan/pipeline.h"
#include "pipeline/run_options.h"
#include "support/golden.h"

namespace kakusan {
namespace {

// Attention's products follow the component's weights: bf16 for bf16 matrices; f16 matrices give f16
// products only where the backend has f16 arithmetic (CUDA) — on the CPU fp16 saves memory only, as before.
TEST(Bf16Precision, AttentionFollowsTheWeights) {
  const Backend& cpu = cpu_backend();
  EXPECT_EQ(attention_params({}, DType::BF16, cpu).precision, DType::BF16);
  EXPECT_EQ(attention_params({}, DType::F16, cpu).precision, DType::F32);
  EXPECT_EQ(attention_params({}, DType::F32, cpu).precision, DType::F32);
  AttentionOptions sliced;
  sliced.mode = AttentionOptions::Mode::Sliced;
  sliced.slice_size = 3;
  const AttentionParams p = attention_params(sliced, DType::BF16, cpu);
  EXPECT_EQ(p.strategy, AttentionStrategy::Sliced);
  EXPECT_EQ(p.slice_size, 3);
}

// The CPU backend, recording what the pipeline asks of it: every attention call's precision and every
// linear / conv2d weight's dtype.
class PrecisionRecorder final : public Backend {
 public:
  std::set<DType> attention_precisions, weight_dtypes;
  int attention_calls = 0;
  bool f16_products = false;  // stands in for a backend with f16 arithmetic (CUDA)
  void reset() {
    attention_precisions.clear();
    weight_dtypes.clear();
    attention_calls = 0;
    f16_products = false;
  }

  const char* name() const override { return "precision-recorder"; }
  bool has_f16_products() const override { return f16_products; }
  void linear(const TensorView& x, const TensorView& w, const TensorView& b, const TensorView& y) override {
    weight_dtypes.insert(w.dtype);
    cpu().linear(x, w, b, y);
  }
  void conv2d(const TensorView& x, const TensorView& w, const TensorView& b, const Conv2dParams& p,
              const TensorView& y) override {
    weight_dtypes.insert(w.dtype);
    cpu().conv2d(x, w, b, p, y);
  }
  void attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                 const TensorView& out) override {
    attention_precisions.insert(p.precision);
    ++attention_calls;
    cpu().attention(q, k, v, p, out);
  }
  void group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta, float eps,
                  Activation act, const TensorView& y) override {
    cpu().group_norm(x, groups, gamma, beta, eps, act, y);
  }
  void layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                  const TensorView& y) override {
    cpu().layer_norm(x, gamma, beta, eps, y);
  }
  void activation(const TensorView& x, Activation act, const TensorView& y) override { cpu().activation(x, act, y); }
  void add(const TensorView& a, const TensorView& b, const TensorView& y) override { cpu().add(a, b, y); }
  void geglu(const TensorView& x, const TensorView& y) override { cpu().geglu(x, y); }
  void resize_nearest(const TensorView& x, const TensorView& y) override { cpu().resize_nearest(x, y); }
  void scale(const TensorView& x, float alpha, const TensorView& y) override { cpu().scale(x, alpha, y); }
  void divide(const TensorView& x, float divisor, const TensorView& y) override { cpu().divide(x, divisor, y); }
  void cfg_combine(const TensorView& n, float g, const TensorView& out) override { cpu().cfg_combine(n, g, out); }
  void timestep_embedding(const TensorView& t, bool flip, int shift, const TensorView& y) override {
    cpu().timestep_embedding(t, flip, shift, y);
  }
  void embedding(const TensorView& table, const TensorView& ids, const TensorView& y) override {
    cpu().embedding(table, ids, y);
  }
  void gaussian_sample(const TensorView& m, const TensorView& noise, const TensorView& y) override {
    cpu().gaussian_sample(m, noise, y);
  }
  void blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) override {
    cpu().blend_tiles(a, b, extent, vertical);
  }
  void copy(const TensorView& x, const TensorView& y) override { cpu().copy(x, y); }
  int64_t attention_scratch_bytes(const AttentionParams& p, int64_t tokens, int64_t keys) const override {
    return cpu_backend().attention_scratch_bytes(p, tokens, keys);
  }

 private:
  static Backend& cpu() { return cpu_backend(); }
};

PrecisionRecorder& recorder() {
  static PrecisionRecorder* r = [] {
    auto* made = new PrecisionRecorder;  // never destroyed: pipelines may hold its memory until exit
    register_backend("precision-recorder", [made](int) -> Backend& { return *made; });
    return made;
  }();
  return *r;
}

// One step of case b's settings on the recorder: which precisions the text encoder's, UNet's and VAE's
// attention got, and which weight dtypes the products saw.
PrecisionRecorder& record_run(WeightDType dtype, bool f16_products = false) {
  PrecisionRecorder& r = recorder();
  r.reset();
  r.f16_products = f16_products;
  LoadOptions load;
  load.device = "precision-recorder";
  load.dtype = dtype;
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), load);
  GenerateParams params;
  params.prompt = {"portrait photo of a old warrior chief"};
  params.seeds = {0};
  params.num_inference_steps = 1;
  pipe.generate(params);
  return r;
}

// --dtype bf16 reaches every phase: bf16 matrices in every product and bf16 attention in the text encoder,
// the UNet and the VAE; fp16 and fp32 keep f32 attention (fp32 and fp16 runs as before).
TEST(Bf16Precision, ThePipelineSetsItForEveryPhase) {
  KK_REQUIRE_GOLDEN();
  PrecisionRecorder& bf16 = record_run(WeightDType::BF16);
  EXPECT_GT(bf16.attention_calls, 0);
  EXPECT_EQ(bf16.attention_precisions, std::set<DType>{DType::BF16});
  EXPECT_EQ(bf16.weight_dtypes, std::set<DType>{DType::BF16});
  PrecisionRecorder& fp16 = record_run(WeightDType::F16);
  EXPECT_EQ(fp16.attention_precisions, std::set<DType>{DType::F32});
  EXPECT_EQ(fp16.weight_dtypes, std::set<DType>{DType::F16});
  PrecisionRecorder& fp32 = record_run(WeightDType::Auto);  // the kit stores fp32
  EXPECT_EQ(fp32.attention_precisions, std::set<DType>{DType::F32});
  EXPECT_EQ(fp32.weight_dtypes, std::set<DType>{DType::F32});
}

// On a backend with f16 arithmetic (CUDA), fp16 weights make the attention f16 too (the tutorial's fp16).
TEST(Bf16Precision, Fp16AttentionWhereTheBackendHasF16Products) {
  KK_REQUIRE_GOLDEN();
  PrecisionRecorder& fp16 = record_run(WeightDType::F16, /*f16_products=*/true);
  EXPECT_GT(fp16.attention_calls, 0);
  EXPECT_EQ(fp16.attention_precisions, std::set<DType>{DType::F16});
  EXPECT_EQ(fp16.weight_dtypes, std::set<DType>{DType::F16});
}

}  // namespace
}  // namespace kakusan
