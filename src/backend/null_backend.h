// NullBackend: the dry pass that plans memory. Its ops compute nothing, so running a model on it costs
// microseconds, and since arena sizes depend only on shapes and options, an arena allocating through it
// records the real run's peak exactly. Its memory is host memory that is mapped but never touched (ops do
// not write, and models do not touch activations behind the backend), so sizing costs no resident memory.
#pragma once

#include "backend/backend.h"

namespace kakusan {

// A Backend whose ops do nothing (outputs keep whatever the arena held): for dry sizing passes. Given the
// backend the real run will use and a tally, it reports each linear, conv2d and attention call to that
// backend's tally_*_scratch (the kernel scratch the run will hold).
class NullBackend final : public Backend {
 public:
  NullBackend() = default;
  NullBackend(const Backend& planned, ScratchTally& tally) : planned_(&planned), tally_(&tally) {}

  const char* name() const override { return "null"; }
  void upload(const TensorView&, const TensorView&) override {}
  void download(const TensorView&, const TensorView&) override {}
  void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView&) override {
    if (planned_) planned_->tally_linear_scratch(x, w, bias, *tally_);
  }
  void conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
              const TensorView& y) override {
    if (planned_) planned_->tally_conv2d_scratch(x, w, bias, p, y, *tally_);
  }
  void group_norm(const TensorView&, int, const TensorView&, const TensorView&, float, Activation,
                  const TensorView&) override {}
  void layer_norm(const TensorView&, const TensorView&, const TensorView&, float, const TensorView&) override {}
  void attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                 const TensorView&) override {
    if (planned_) planned_->tally_attention_scratch(q, k, v, p, *tally_);
  }
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

 private:
  const Backend* planned_ = nullptr;
  ScratchTally* tally_ = nullptr;
};

}  // namespace kakusan
