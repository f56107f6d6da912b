// NullBackend: the dry pass that plans memory. Its ops compute nothing, so running a model on it costs
// microseconds, and since arena sizes depend only on shapes and options, an arena allocating through it
// records the real run's peak exactly. Its memory is host memory that is mapped but never touched (ops do
// not write, and models do not touch activations behind the backend), so sizing costs no resident memory.
#pragma once

#include "backend/backend.h"

namespace kakusan {

// A Backend whose ops do nothing (outputs keep whatever the arena held): for dry sizing passes.
class NullBackend final : public Backend {
 public:
  const char* name() const override { return "null"; }
  void upload(const TensorView&, const TensorView&) override {}
  void download(const TensorView&, const TensorView&) override {}
  void linear(const TensorView&, const TensorView&, const TensorView&, const TensorView&) override {}
  void conv2d(const TensorView&, const TensorView&, const TensorView&, const Conv2dParams&,
              const TensorView&) override {}
  void group_norm(const TensorView&, int, const TensorView&, const TensorView&, float, Activation,
                  const TensorView&) override {}
  void layer_norm(const TensorView&, const TensorView&, const TensorView&, float, const TensorView&) override {}
  void attention(const TensorView&, const TensorView&, const TensorView&, const AttentionParams&,
                 const TensorView&) override {}
  void activation(const TensorView&, Activation, const TensorView&) override {}
  void add(const TensorView&, const TensorView&, const TensorView&) override {}
  void geglu(const TensorView&, const TensorView&) override {}
  void resize_nearest(const TensorView&, const TensorView&) override {}
  void scale(const TensorView&, float, const TensorView&) override {}
  void divide(const TensorView&, float, const TensorView&) override {}
  void cfg_combine(const TensorView&, float, const TensorView&) override {}
  void timestep_embedding(const TensorView&, bool, int, const TensorView&) override {}
  void embedding(const TensorView&, const TensorView&, const TensorView&) override {}
  void gaussian_sample(const TensorView&, const TensorView&, const TensorView&) override {}
  void blend_tiles(const TensorView&, const TensorView&, int64_t, bool) override {}
  void copy(const TensorView&, const TensorView&) override {}
};

}  // namespace kakusan
