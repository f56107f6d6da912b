// DeviceWeights and BlockByBlockWeights on the separate-heap device: what is on the device when, and that the
// model gets back exactly the host tensors it had.
#include <gtest/gtest.h>

#include <vector>

#include "backend/null_backend.h"
#include "core/error.h"
#include "nn/device_weights.h"
#include "nn/layers.h"
#include "support/separate_heap_backend.h"

namespace kakusan {
namespace {

using testing::SeparateHeapBackend;

Linear filled_linear(int64_t in, int64_t out, float value) {
  Linear l(in, out);
  l.weight = Tensor::full({out, in}, value);
  l.bias = Tensor::full({out}, -value);
  return l;
}

int64_t param_bytes(int64_t in, int64_t out) { return (in * out + out) * int64_t(sizeof(float)); }

// A block model as the UNet: a stem outside the blocks, then blocks run in order.
struct Blocks {
  Linear stem = filled_linear(4, 4, 0.5f);
  std::vector<Linear> blocks;
  Blocks() {
    blocks.push_back(filled_linear(4, 8, 1));
    blocks.push_back(filled_linear(8, 16, 2));
    blocks.push_back(filled_linear(16, 4, 3));
  }
  void visit(WeightVisitor& v) {
    v.child("stem", stem);
    v.children("blocks", blocks);
  }
  size_t num_blocks() const { return blocks.size(); }
  void visit_block(size_t i, WeightVisitor& v) { v.child(int(i), blocks[i]); }
};

TEST(DeviceWeights, SwapsEachParameterForADeviceCopyAndBack) {
  SeparateHeapBackend heap;
  Linear l = filled_linear(3, 5, 1.5f);
  const void* host_weight = l.weight.data();
  const void* host_bias = l.bias.data();
  {
    DeviceWeights held(heap);
    held.add_module(l);
    EXPECT_EQ(l.weight.device(), heap.device());
    EXPECT_EQ(l.bias.device(), heap.device());
    EXPECT_EQ(held.bytes(), param_bytes(3, 5));
    EXPECT_EQ(int64_t(heap.live_bytes()), param_bytes(3, 5));
    // The copy holds the values (read back through the backend: the heap is scrambled).
    Tensor back = Tensor::empty({5, 3});
    heap.download(l.weight, back);
    for (int64_t i = 0; i < back.numel(); ++i) ASSERT_EQ(back.f32()[i], 1.5f);
    // A second add of the same module uploads nothing: its parameters already are the device's.
    held.add_module(l);
    EXPECT_EQ(held.bytes(), param_bytes(3, 5));
  }  // the destructor gives the host tensors back
  EXPECT_EQ(heap.live_bytes(), 0u);
  EXPECT_EQ(l.weight.data(), host_weight);
  EXPECT_EQ(l.bias.data(), host_bias);
  EXPECT_TRUE(l.weight.device().is_host());
}

TEST(DeviceWeights, DroppedHostCopiesComeBackFromTheDeviceBitForBit) {
  SeparateHeapBackend heap;
  Linear l = filled_linear(3, 5, 1.5f);
  l.weight.f32()[7] = -0.1f;  // not a value a fill would restore
  const void* kept_bias = l.bias.data();
  DeviceWeights held(heap);
  held.add_module(l);
  // The weight is an owned copy (dropped), the bias stands for a mapped view (kept).
  held.drop_host_copies([&](const Tensor& t) { return t.data() != kept_bias; });
  held.release();
  EXPECT_EQ(heap.live_bytes(), 0u);
  EXPECT_EQ(held.bytes(), 0);
  ASSERT_TRUE(l.weight.device().is_host());
  EXPECT_EQ(l.bias.data(), kept_bias);
  for (int64_t i = 0; i < l.weight.numel(); ++i) EXPECT_EQ(l.weight.f32()[i], i == 7 ? -0.1f : 1.5f) << i;
  EXPECT_EQ(l.weight.shape(), (Shape{5, 3}));
}

TEST(DeviceWeights, DoesNothingOnAHostBackend) {
  NullBackend host;
  Linear l = filled_linear(2, 2, 1);
  const void* weight = l.weight.data();
  DeviceWeights held(host);
  held.add_module(l);
  EXPECT_EQ(held.bytes(), 0);
  EXPECT_EQ(l.weight.data(), weight);
}

TEST(DeviceWeights, LeavesOutTheExceptedParameters) {
  SeparateHeapBackend heap;
  Blocks model;
  ParameterSet in_blocks;
  for (size_t i = 0; i < model.num_blocks(); ++i) model.visit_block(i, in_blocks);
  EXPECT_EQ(in_blocks.params.size(), 6u);
  DeviceWeights held(heap);
  held.add([&](WeightVisitor& v) { model.visit(v); }, in_blocks.params);
  EXPECT_EQ(held.bytes(), param_bytes(4, 4));
  EXPECT_EQ(model.stem.weight.device(), heap.device());
  EXPECT_TRUE(model.blocks[0].weight.device().is_host());
}

TEST(DeviceWeights, AFailedUploadLeavesTheModelOnTheHost) {
  SeparateHeapBackend heap;
  Linear l = filled_linear(3, 5, 1);
  l.bias = Tensor::full({4}, 0);  // not the shape the walk expects
  {
    DeviceWeights held(heap);
    EXPECT_THROW(held.add_module(l), Error);
  }
  EXPECT_TRUE(l.weight.device().is_host());
  EXPECT_EQ(heap.live_bytes(), 0u);
}

// Sequential offload: the stem for the whole phase, each block from just before it runs to just after.
TEST(BlockByBlockWeights, HoldsTheStemAndOneBlockAtATime) {
  SeparateHeapBackend heap;
  Blocks model;
  const int64_t stem = param_bytes(4, 4);
  const int64_t block[] = {param_bytes(4, 8), param_bytes(8, 16), param_bytes(16, 4)};
  {
    BlockByBlockWeights<Blocks> weights(heap, model);
    EXPECT_EQ(int64_t(heap.live_bytes()), stem);
    for (int pass = 0; pass < 2; ++pass) {
      weights.begin_pass();
      for (size_t i = 0; i < model.num_blocks(); ++i) {
        SCOPED_TRACE(i);
        // Block i is what runs now: on the device, the others on the host.
        EXPECT_EQ(int64_t(heap.live_bytes()), stem + block[i]);
        EXPECT_EQ(weights.bytes(), stem + block[i]);
        for (size_t j = 0; j < model.num_blocks(); ++j)
          EXPECT_EQ(model.blocks[j].weight.device() == heap.device(), i == j) << j;
        weights.after_block();
      }
      EXPECT_EQ(int64_t(heap.live_bytes()), stem);
    }
  }
  EXPECT_EQ(heap.live_bytes(), 0u);
  EXPECT_TRUE(model.stem.weight.device().is_host());
}

// The dry pass reports each linear to the planned backend's tally (here: an f16 copy of the input).
TEST(ScratchTally, TheDryPassReportsEachOpToThePlannedBackend) {
  SeparateHeapBackend planned;
  planned.set_reports_linear_scratch(true);
  ScratchTally tally;
  NullBackend null(planned, tally);
  Linear small = filled_linear(8, 4, 1), large = filled_linear(8, 4, 1);
  const Tensor x_small = Tensor::zeros({2, 8}), x_large = Tensor::zeros({6, 8});
  Tensor y = Tensor::empty({6, 4});
  small.forward(null, x_small, y.view().narrow(0, 0, 2));
  large.forward(null, x_large, y);
  // One buffer, grown to the larger request (6 x 8 halves), not the sum.
  EXPECT_EQ(tally.total(), 6 * 8 * 2);
  tally.need(3, 100);
  EXPECT_EQ(tally.total(), 6 * 8 * 2 + 100);
}

}  // namespace
}  // namespace kakusan
