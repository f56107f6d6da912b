// StepGraph: the denoising loop's noise model run as a captured graph (CUDA graphs; backend.h's capture).
//
// A UNet step is ~1000 small ops; on a GPU their launches cost more than some of the kernels. StepGraph runs
// the model eagerly on its first call (which makes the backend's GEMM/convolution plans and sizes its
// scratch), captures it on the second (then replays the capture to compute that step) and replays it on every
// later call: one launch per step. A replay redoes the recorded ops on the recorded addresses, so it is only
// used while those are still the step's: the three operands' views and whatever `layout` adds (the UNet
// arena's layout, the prompt embeddings) must be the same as when it was captured; otherwise that call runs
// eagerly and the next one captures again. A backend that does not capture (the host backends), or a capture
// that fails (an op that allocates, say), leaves every call eager.
//
//   StepGraph graph(backend, unet_call, [&](StepKey& key) { key.push_back(arena.layout_hash()); });
//   denoise(backend, scheduler, generators, latents, std::ref(graph), options);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/denoise.h"

namespace kakusan {

// What a captured step's addresses depend on; equal keys mean a replay is the step.
using StepKey = std::vector<uint64_t>;
// Appends a view's address, dtype, shape and strides to a key.
void add_to_key(StepKey& key, const TensorView& view);

class StepGraph {
 public:
  StepGraph(Backend& backend, NoiseModel model, std::function<void(StepKey&)> layout = {});
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  void operator()(const TensorView& input, const TensorView& t, const TensorView& noise_pred);

  // What the calls did: ran eagerly, captured (each capture is also replayed once), replayed.
  int eager_calls() const { return eager_; }
  int captures() const { return captures_; }
  int replays() const { return replays_; }
  // Why capturing was given up (the backend's error), or empty.
  const std::string& gave_up() const { return gave_up_; }

 private:
  // Captures the model on these operands and replays the capture; false (nothing ran) when that failed.
  bool capture(const TensorView& input, const TensorView& t, const TensorView& noise_pred);

  Backend& backend_;
  NoiseModel model_;
  std::function<void(StepKey&)> layout_;
  std::unique_ptr<OpGraph> graph_;
  StepKey key_;        // this step's key (a buffer reused from step to step)
  StepKey graph_key_;  // the key the graph was captured with
  StepKey warm_key_;   // the key of the last eager call: the next call with it captures
  bool can_capture_ = true;
  int eager_ = 0, captures_ = 0, replays_ = 0;
  std::string gave_up_;
};

}  // namespace kakusan
