// Capture and replay (CUDA graphs' seam, backend.h) on the CPU: the separate-heap backend records ops as a
// GPU stream capture does, and StepGraph replays the denoising step only while its addresses still hold.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "backend/staged_tensor.h"
#include "core/arena.h"
#include "core/error.h"
#include "pipeline/step_graph.h"
#include "support/separate_heap_backend.h"

namespace kakusan {
namespace {

using testing::SeparateHeapBackend;

Tensor device_full(Backend& be, Shape shape, float value) {
  Tensor t = be.empty(shape);
  be.upload(Tensor::full(shape, value), t);
  return t;
}

void set_all(Backend& be, const Tensor& t, float value) { be.upload(Tensor::full(t.shape(), value), t); }

// t [1] seen as `shape` (zero strides).
TensorView broadcast(const TensorView& t, const Shape& shape) { return t.as_strided(shape, Shape{0, 0}); }

float first(Backend& be, const TensorView& v) { return host_copy(be, v).f32()[0]; }

TEST(Capture, RecordsWithoutRunningAndReplaysOnTheSameAddresses) {
  SeparateHeapBackend be;
  const Tensor a = device_full(be, {4}, 1.0f);
  const Tensor b = device_full(be, {4}, 0.0f);
  ASSERT_TRUE(be.begin_capture());
  be.scale(a, 2.0f, b);
  const std::unique_ptr<OpGraph> graph = be.end_capture();
  EXPECT_EQ(first(be, b), 0.0f) << "a captured op must not run";
  ASSERT_TRUE(graph->replay());
  EXPECT_EQ(first(be, b), 2.0f);
  set_all(be, a, 3.0f);  // a replay reads what its operands' memory holds now
  ASSERT_TRUE(graph->replay());
  EXPECT_EQ(first(be, b), 6.0f);
  EXPECT_EQ(be.replayed_ops(), 2);
}

TEST(Capture, AnAllocationWhileCapturingIsAClearErrorAndTheCaptureIsAbandoned) {
  SeparateHeapBackend be;
  const Tensor a = device_full(be, {4}, 1.0f);
  const Tensor b = device_full(be, {4}, 0.0f);
  ASSERT_TRUE(be.begin_capture());
  be.scale(a, 2.0f, b);
  try {
    Tensor grown = be.empty({1024});
    FAIL() << "allocating while capturing must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot allocate (4096 bytes) while capturing"), std::string::npos)
        << e.what();
  }
  be.abort_capture();
  EXPECT_THROW(be.end_capture(), Error);  // nothing to end: the capture is gone
  be.scale(a, 5.0f, b);                   // and ops run again
  EXPECT_EQ(first(be, b), 5.0f);
  EXPECT_EQ(be.replayed_ops(), 0);
}

TEST(Capture, TransfersAndEmbeddingAreRefusedWhileCapturing) {
  SeparateHeapBackend be;
  const Tensor a = device_full(be, {4}, 1.0f);
  Tensor host = Tensor::empty({4});
  const Tensor table = device_full(be, {3, 4}, 1.0f);
  Tensor ids = be.empty({1}, DType::I64);
  Tensor ids_host = Tensor::empty({1}, DType::I64);
  ids_host.i64()[0] = 0;
  be.upload(ids_host, ids);
  const Tensor rows = be.empty({1, 4});
  ASSERT_TRUE(be.begin_capture());
  EXPECT_THROW(be.upload(host, a), Error);
  EXPECT_THROW(be.download(a, host), Error);
  EXPECT_THROW(be.embedding(table, ids, rows), Error);
  be.abort_capture();
  be.download(a, host);
  EXPECT_EQ(host.f32()[0], 1.0f);
}

TEST(Capture, MemoryFreedWhileCapturingMakesTheCaptureUnusable) {
  SeparateHeapBackend be;
  const Tensor a = device_full(be, {4}, 1.0f);
  Tensor temporary = device_full(be, {4}, 0.0f);
  ASSERT_TRUE(be.begin_capture());
  be.scale(a, 2.0f, temporary);
  temporary = Tensor();  // the graph would write into a freed block at every replay
  EXPECT_THROW(be.end_capture(), Error);
  EXPECT_TRUE(be.begin_capture());  // the failed capture ended
  be.abort_capture();
}

TEST(Capture, AGraphDeclinesToReplayOnceTheScratchWasGivenBack) {
  SeparateHeapBackend be;
  const Tensor a = device_full(be, {4}, 1.0f);
  const Tensor b = device_full(be, {4}, 0.0f);
  ASSERT_TRUE(be.begin_capture());
  be.scale(a, 2.0f, b);
  const std::unique_ptr<OpGraph> graph = be.end_capture();
  be.release_scratch();
  EXPECT_FALSE(graph->replay());
  EXPECT_EQ(first(be, b), 0.0f) << "a declined replay runs nothing";
}

TEST(Capture, OnlyTheCapturingThreadsOpsAreRecorded) {
  SeparateHeapBackend be;
  const Tensor a = device_full(be, {4}, 1.0f);
  const Tensor b = device_full(be, {4}, 0.0f);
  const Tensor c = device_full(be, {4}, 0.0f);
  ASSERT_TRUE(be.begin_capture());
  std::thread([&] { be.scale(a, 7.0f, c); }).join();  // runs at once (a GPU backend makes it wait instead)
  be.scale(a, 2.0f, b);
  const std::unique_ptr<OpGraph> graph = be.end_capture();
  EXPECT_EQ(first(be, c), 7.0f);
  set_all(be, c, 0.0f);
  ASSERT_TRUE(graph->replay());
  EXPECT_EQ(first(be, b), 2.0f);
  EXPECT_EQ(first(be, c), 0.0f);
}

TEST(Capture, HostBackendsDoNotCapture) {
  EXPECT_FALSE(cpu_backend().begin_capture());
  EXPECT_THROW(cpu_backend().end_capture(), Error);
}

// A step of the denoising loop's shape: activations from an arena released when it returns, the output
// written into noise_pred. noise_pred = 2 * input + t.
struct ArenaModel {
  Backend& be;
  Arena& arena;
  void operator()(const TensorView& input, const TensorView& t, const TensorView& noise_pred) const {
    ArenaScope scope(arena);
    const TensorView doubled = arena.alloc(input.shape);
    be.scale(input, 2.0f, doubled);
    const TensorView t_wide = arena.alloc(input.shape);
    be.copy(broadcast(t, input.shape), t_wide);
    be.add(doubled, t_wide, noise_pred);
  }
};

// Runs `steps` calls as the loop does (the inputs uploaded into the same buffers each step) and checks each
// prediction against 2 * input + t.
void run_steps(Backend& be, const NoiseModel& model, int steps, const std::function<void(int)>& between = {},
               const Shape& shape = {2, 3}) {
  StagedTensor input(be, shape);
  StagedTensor t(be, {1});
  StagedTensor noise_pred(be, shape);
  for (int i = 0; i < steps; ++i) {
    if (between) between(i);
    for (int64_t k = 0; k < 6; ++k) input.host().f32()[k] = float(10 * i + k);
    t.host().f32()[0] = float(100 * i);
    input.upload();
    t.upload();
    model(input.on_backend(), t.on_backend(), noise_pred.on_backend());
    noise_pred.download();
    for (int64_t k = 0; k < 6; ++k)
      ASSERT_EQ(noise_pred.host().f32()[k], 2.0f * float(10 * i + k) + float(100 * i)) << "step " << i << " [" << k
                                                                                        << "]";
  }
}

std::function<void(StepKey&)> arena_layout(const Arena& arena) {
  return [&arena](StepKey& key) { key.push_back(arena.layout_hash()); };
}

TEST(StepGraph, RunsEagerlyThenCapturesOnceThenReplays) {
  SeparateHeapBackend be;
  {
    Arena arena(be, 1 << 20);
    StepGraph graph(be, ArenaModel{be, arena}, arena_layout(arena));
    run_steps(be, std::ref(graph), 6);
    EXPECT_EQ(graph.eager_calls(), 1);
    EXPECT_EQ(graph.captures(), 1);
    EXPECT_EQ(graph.replays(), 4);
    EXPECT_TRUE(graph.gave_up().empty());
  }
  EXPECT_EQ(be.replayed_ops(), 5 * 3);  // the capture's own replay and four more, three ops each
}

TEST(StepGraph, NewOperandsRunEagerlyThenCaptureAgain) {
  SeparateHeapBackend be;
  Arena arena(be, 1 << 20);
  StepGraph graph(be, ArenaModel{be, arena}, arena_layout(arena));
  run_steps(be, std::ref(graph), 3);              // eager, capture, replay
  run_steps(be, std::ref(graph), 3, {}, {3, 2});  // another shape: eager, capture, replay again
  EXPECT_EQ(graph.eager_calls(), 2);
  EXPECT_EQ(graph.captures(), 2);
  EXPECT_EQ(graph.replays(), 2);
}

TEST(StepGraph, AGraphThatDeclinesIsWarmedUpAndCapturedAgain) {
  SeparateHeapBackend be;
  Arena arena(be, 1 << 20);
  StepGraph graph(be, ArenaModel{be, arena}, arena_layout(arena));
  run_steps(be, std::ref(graph), 6, [&](int step) {
    if (step == 3) be.release_scratch();  // another pipeline on the device gave the scratch back
  });
  EXPECT_EQ(graph.eager_calls(), 2);  // steps 0 and 3 (the declined replay)
  EXPECT_EQ(graph.captures(), 2);     // steps 1 and 4
  EXPECT_EQ(graph.replays(), 2);      // steps 2 and 5
}

TEST(StepGraph, OnAHostBackendEveryCallIsEager) {
  Arena arena(cpu_backend(), 1 << 20);
  StepGraph graph(cpu_backend(), ArenaModel{cpu_backend(), arena}, arena_layout(arena));
  run_steps(cpu_backend(), std::ref(graph), 4);
  EXPECT_EQ(graph.eager_calls(), 4);
  EXPECT_EQ(graph.captures(), 0);
}

TEST(StepGraph, AModelThatAllocatesGivesCapturingUpAndStaysCorrect) {
  SeparateHeapBackend be;
  const NoiseModel allocating = [&be](const TensorView& input, const TensorView& t, const TensorView& noise_pred) {
    Tensor doubled = be.empty(input.shape);  // a fresh block every step: cannot be captured
    Tensor t_wide = be.empty(input.shape);
    be.scale(input, 2.0f, doubled);
    be.copy(broadcast(t, input.shape), t_wide);
    be.add(doubled, t_wide, noise_pred);
  };
  StepGraph graph(be, allocating);
  run_steps(be, std::ref(graph), 4);
  EXPECT_EQ(graph.captures(), 0);
  EXPECT_EQ(graph.eager_calls(), 4);
  EXPECT_NE(graph.gave_up().find("while capturing"), std::string::npos) << graph.gave_up();
}

// Between steps something else takes the arena's place where the step's activations were (and fills it):
// a replay would write the step's activations over it. With the arena in the key, StepGraph sees the move and
// runs eagerly; without it, the replay does overwrite the other data: the recording is faithful enough for
// the check to matter.
void shift_arena_between_steps(bool guarded) {
  SeparateHeapBackend be;
  Arena arena(be, 1 << 20);
  StepGraph graph(be, ArenaModel{be, arena}, guarded ? arena_layout(arena) : std::function<void(StepKey&)>{});
  TensorView held;
  run_steps(be, std::ref(graph), 4, [&](int step) {
    if (step != 2) return;
    held = arena.alloc({2, 3});  // lands where the step's first activation was
    be.upload(Tensor::full({2, 3}, -7.0f), held);
  });
  const Tensor kept = host_copy(be, held);
  if (guarded) {
    EXPECT_EQ(graph.replays(), 0);  // step 2 ran eagerly on the new layout, step 3 captured it anew
    EXPECT_EQ(graph.captures(), 2);
    EXPECT_EQ(kept.f32()[0], -7.0f);
  } else {
    EXPECT_EQ(graph.replays(), 2);
    EXPECT_NE(kept.f32()[0], -7.0f) << "the replay writes the old addresses";
  }
}

TEST(StepGraph, AnArenaThatMovedIsCaught) { shift_arena_between_steps(true); }
TEST(StepGraph, WithoutTheArenaInTheKeyAReplayWouldCorruptWhatMovedIn) { shift_arena_between_steps(false); }

}  // namespace
}  // namespace kakusan
