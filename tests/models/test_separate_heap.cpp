// The model goldens on SeparateHeapBackend (tests/support): weights uploaded through upload_weights, inputs
// uploaded, outputs downloaded, everything between on a heap that host code cannot read. Matching diffusers
// there proves that no model code touches activations or weights behind the backend's back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "core/generator.h"
#include "model_tolerances.h"
#include "models/autoencoder_kl.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"
#include "nn/upload_weights.h"
#include "support/golden.h"
#include "support/separate_heap_backend.h"

namespace kakusan {
namespace {

using testing::golden_dir;
using testing::open_golden;
using testing::SeparateHeapBackend;

Tensor to_device(Backend& be, const TensorView& host) {
  Tensor t = be.empty(host.shape, host.dtype);
  be.upload(host, t);
  return t;
}

Tensor to_host(Backend& be, const TensorView& device) {
  Tensor t = Tensor::empty(device.shape, device.dtype);
  be.download(device, t);
  return t;
}

TEST(SeparateHeap, MemoryIsScrambledAndOpsRefuseOtherMemory) {
  SeparateHeapBackend heap;
  const Tensor host = Tensor::full({4, 4}, 1.5f);
  {
    const Tensor on_heap = to_device(heap, host);
    EXPECT_EQ(on_heap.device(), heap.device());
    EXPECT_NE(std::memcmp(on_heap.data(), host.data(), host.nbytes()), 0) << "the heap stores plain floats";
    KK_EXPECT_CLOSE(to_host(heap, on_heap), host, testing::Tolerance{0, 0}, "round trip");
    Tensor y = heap.empty({4, 4});
    try {
      heap.add(on_heap, host, y);  // a host operand
      FAIL() << "host memory was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("add: b is host memory"), std::string::npos) << e.what();
    }
    float elsewhere[16] = {};
    const TensorView forged(elsewhere, DType::F32, heap.device(), Shape{4, 4});
    EXPECT_THROW(heap.activation(forged, Activation::SiLU, y), Error);  // tagged, but not from this heap
    heap.activation(on_heap, Activation::None, y);
    KK_EXPECT_CLOSE(to_host(heap, y), host, testing::Tolerance{0, 0}, "identity");
  }
  EXPECT_EQ(heap.live_bytes(), 0u);
}

TEST(SeparateHeap, UNetGolden) {
  KK_REQUIRE_GOLDEN();
  SeparateHeapBackend heap;
  {
    UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / "tiny-sd" / "unet");
    upload_weights(unet, heap);
    const SafetensorsFile golden = open_golden("components/unet_tiny-sd.safetensors");
    const Tensor sample = to_device(heap, golden.view("sample"));
    const Tensor context = to_device(heap, golden.view("encoder_hidden_states"));
    Arena arena(heap);
    Context ctx{heap, arena, {}};
    Activations trace;
    const Tensor t981 = to_device(heap, Tensor::full({1}, 981.0f));
    const Tensor out = unet.forward(ctx, sample, t981, context, &trace);
    EXPECT_EQ(out.device(), heap.device());
    KK_EXPECT_CLOSE(to_host(heap, out), golden.view("noise_pred_t981"), testing::kUNetTolerance, "noise_pred_t981");
    for (const char* name : {"time_proj", "down_blocks.1", "mid_block", "up_blocks.3"}) {
      std::string key = std::string("act_t981_") + name;
      std::replace(key.begin(), key.end(), '.', '_');
      KK_EXPECT_CLOSE(*trace.find(name), golden.view(key), testing::kUNetTolerance, name);
    }
    Tensor two = Tensor::empty({2});
    two.f32()[0] = 981.0f;
    two.f32()[1] = 1.0f;
    KK_EXPECT_CLOSE(to_host(heap, unet.forward(ctx, sample, to_device(heap, two), context)),
                    golden.view("noise_pred_t_981_1"), testing::kUNetTolerance, "noise_pred_t_981_1");
  }
  EXPECT_EQ(heap.live_bytes(), 0u);
}

TEST(SeparateHeap, VaeGoldenDecodeAndEncodeWithSample) {
  KK_REQUIRE_GOLDEN();
  SeparateHeapBackend heap;
  {
    AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd" / "vae");
    upload_weights(vae, heap);
    const SafetensorsFile golden = open_golden("components/vae_tiny-sd.safetensors");
    Arena arena(heap);
    Context ctx{heap, arena, {}};
    Activations trace;
    const Tensor decoded = vae.decode(ctx, to_device(heap, golden.view("decoder_input")), {}, &trace);
    KK_EXPECT_CLOSE(to_host(heap, decoded), golden.view("decoded"), testing::kVaeTolerance, "decoded");
    KK_EXPECT_CLOSE(*trace.find("post_quant_conv"), golden.view("post_quant_conv"), testing::kVaeTolerance,
                    "post_quant_conv");

    const DiagonalGaussianDistribution dist = vae.encode(ctx, to_device(heap, golden.view("image")));
    KK_EXPECT_CLOSE(to_host(heap, dist.moments), golden.view("moments"), testing::kVaeTolerance, "moments");
    KK_EXPECT_CLOSE(to_host(heap, dist.mean), golden.view("mean"), testing::kVaeTolerance, "mean");
    Generator generator(0);
    KK_EXPECT_CLOSE(to_host(heap, dist.sample(heap, generator)), golden.view("latent_sample_seed0"),
                    testing::kVaeTolerance, "latent_sample_seed0");
    KK_EXPECT_CLOSE(to_host(heap, vae.decode(ctx, dist.mode())), golden.view("roundtrip_decoded_mean"),
                    testing::kVaeTolerance, "roundtrip_decoded_mean");
  }
  EXPECT_EQ(heap.live_bytes(), 0u);
}

// Tiled decoding blends tiles through the backend: on the heap it must equal tiled decoding on the CPU.
TEST(SeparateHeap, VaeTiledDecodeMatchesTheCpu) {
  KK_REQUIRE_GOLDEN();
  SeparateHeapBackend heap(cpu_backend());
  {
    AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd" / "vae");
    Generator generator(5);
    const Tensor z = generator.randn({1, 4, 14, 10});
    Arena cpu_arena;
    Context cpu{cpu_backend(), cpu_arena, {}};
    const Tensor want = vae.decode(cpu, z, {.tiling = true});
    upload_weights(vae, heap);
    Arena arena(heap);
    Context ctx{heap, arena, {}};
    KK_EXPECT_CLOSE(to_host(heap, vae.decode(ctx, to_device(heap, z), {.tiling = true})), want,
                    testing::Tolerance{1e-6, 1e-6}, "tiled decode");
  }
  EXPECT_EQ(heap.live_bytes(), 0u);
}

TEST(SeparateHeap, ClipTextEncoderGolden) {
  KK_REQUIRE_GOLDEN();
  SeparateHeapBackend heap;
  {
    ClipTextModel model = ClipTextModel::load(*golden_dir() / "tiny-sd" / "text_encoder");
    upload_weights(model, heap);
    const SafetensorsFile golden = open_golden("components/text_encoder_tiny-sd.safetensors");
    const Tensor ids = to_device(heap, golden.view("input_ids"));
    Arena arena(heap);
    Context ctx{heap, arena, {}};
    const Tensor last = model.forward(ctx, ids);
    KK_EXPECT_CLOSE(to_host(heap, last), golden.view("last_hidden_state"), testing::kTextEncoderTolerance,
                    "last_hidden_state");
    KK_EXPECT_CLOSE(to_host(heap, model.pooled_output(heap, ids, last)), golden.view("pooler_output"),
                    testing::kTextEncoderTolerance, "pooler_output");
    const TensorView want_hidden = golden.view("hidden_states");
    std::vector<Tensor> hidden;
    model.forward(ctx, to_device(heap, golden.view("input_ids").slice0(0, want_hidden.dim(1))), 0, &hidden);
    ASSERT_EQ(int64_t(hidden.size()), want_hidden.dim(0));
    for (size_t i = 0; i < hidden.size(); ++i)
      KK_EXPECT_CLOSE(to_host(heap, hidden[i]), want_hidden[int64_t(i)], testing::kTextEncoderTolerance,
                      "hidden_states[" + std::to_string(i) + "]");
    // An id outside the vocabulary is still a clear error, raised where the lookup runs.
    Tensor bad = Tensor::zeros({1, 4}, DType::I64);
    bad.i64()[2] = model.config().vocab_size;
    EXPECT_THROW(model.forward(ctx, to_device(heap, bad)), Error);
  }
  EXPECT_EQ(heap.live_bytes(), 0u);
}

}  // namespace
}  // namespace kakusan
