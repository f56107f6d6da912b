// cpu_backend(): checks each call's arguments (shared with the reference) and runs the fast kernels.
#include <algorithm>
#include <mutex>
#include <shared_mutex>

#include "backend/backend.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/scratch.h"
#include "backend/op_checks.h"
#include "core/thread_pool.h"

namespace kakusan {
namespace {

// Ops hold this shared while they run; release_scratch() takes it exclusively, so it never frees a buffer
// that a kernel on another thread (a second pipeline) is using: it skips the release instead.
std::shared_mutex& ops_mutex() {
  static std::shared_mutex mutex;
  return mutex;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend() { (void)num_threads(); }  // starts the pool, which also sets BLAS's thread count

  const char* name() const override { return "cpu"; }

  void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    cpu::linear(check_linear(x, w, bias, y), x, w, bias, y);
  }
  void conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
              const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    cpu::conv2d(check_conv2d(x, w, bias, p, y), x, w, bias, p, y);
  }
  void group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta, float eps,
                  Activation act, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    cpu::group_norm(check_group_norm(x, groups, gamma, beta, y), x, groups, gamma, beta, eps, act, y);
  }
  void layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                  const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    cpu::layer_norm(check_layer_norm(x, gamma, beta, y), x, gamma, beta, eps, y);
  }
  void attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                 const TensorView& out) override {
    const std::shared_lock op(ops_mutex());
    cpu::attention(check_attention(q, k, v, p, out), q, k, v, p, out);
  }
  void activation(const TensorView& x, Activation act, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    check_same_shape("activation", x, y);
    check_f32("activation", "y", y);
    cpu::activation(x, act, y);
  }
  void add(const TensorView& a, const TensorView& b, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    check_same_shape("add", a, b);
    check_same_shape("add", a, y);
    check_f32("add", "y", y);
    cpu::add(a, b, y);
  }
  void geglu(const TensorView& x, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    cpu::geglu(check_geglu(x, y), x, y);
  }
  // The small ops run their dense kernel, or the reference for other layouts (never on a hot path).
  void resize_nearest(const TensorView& x, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    check_resize_nearest(x, y);
    if (!cpu::resize_nearest(x, y)) reference_backend().resize_nearest(x, y);
  }
  void scale(const TensorView& x, float alpha, const TensorView& y) override {
    check_same_shape("scale", x, y);
    check_f32("scale", "y", y);
    if (!cpu::scale(x, alpha, false, y)) reference_backend().scale(x, alpha, y);
  }
  void divide(const TensorView& x, float divisor, const TensorView& y) override {
    check_same_shape("divide", x, y);
    check_f32("divide", "y", y);
    if (!cpu::scale(x, divisor, true, y)) reference_backend().divide(x, divisor, y);
  }
  void cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) override {
    check_cfg_combine(noise_pred, out);
    if (!cpu::cfg_combine(noise_pred, guidance, out)) reference_backend().cfg_combine(noise_pred, guidance, out);
  }
  void timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift,
                          const TensorView& y) override {
    check_timestep_embedding(timesteps, freq_shift, y);
    if (!cpu::timestep_embedding(timesteps, flip_sin_to_cos, freq_shift, y))
      reference_backend().timestep_embedding(timesteps, flip_sin_to_cos, freq_shift, y);
  }
  // A few hundred rows (a prompt's tokens): the reference's gather, which converts f16 tables as it goes.
  void embedding(const TensorView& table, const TensorView& ids, const TensorView& y) override {
    reference_backend().embedding(table, ids, y);
  }
  void gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) override {
    check_gaussian_sample(moments, noise, y);
    if (!cpu::gaussian_sample(moments, noise, y)) reference_backend().gaussian_sample(moments, noise, y);
  }
  void blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) override {
    check_blend_tiles(a, b, extent, vertical);
    if (!cpu::blend_tiles(a, b, extent, vertical)) reference_backend().blend_tiles(a, b, extent, vertical);
  }
  void copy(const TensorView& x, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    check_same_shape("copy", x, y);
    cpu::copy_strided(x, y);
  }
  size_t scratch_bytes() const override { return cpu::scratch_bytes(); }
  void release_scratch() override {
    const std::unique_lock none_running(ops_mutex(), std::try_to_lock);
    if (none_running.owns_lock()) cpu::release_all_scratch();
  }
  // Full attention holds one Tq x Tk score matrix per thread (f32 scores, and their probabilities as bf16 where
  // bf16 attention multiplies on bf16gemm), sliced `slice_size` of them, flash a tile (under 1 MB: not
  // counted); Auto runs full attention up to 512 keys and flash beyond.
  int64_t attention_scratch_bytes(const AttentionParams& attention, int64_t tokens, int64_t keys) const override {
    const bool bf16_probabilities =
        attention.precision == DType::BF16 && !attention.causal && cpu::bf16_gemm_native();
    const int64_t matrix = tokens * keys * int64_t(sizeof(float) + (bf16_probabilities ? sizeof(uint16_t) : 0));
    switch (attention.strategy) {
      case AttentionStrategy::Full: return matrix * num_threads();
      case AttentionStrategy::Sliced: return matrix * std::max(1, attention.slice_size);
      case AttentionStrategy::Flash: return 0;
      case AttentionStrategy::Auto: return keys <= 512 ? matrix * num_threads() : 0;
    }
    return 0;
  }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace kakusan
