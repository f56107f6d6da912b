// cpu_backend(): checks each call's arguments (shared with the reference) and runs the fast kernels.
#include <algorithm>
#include <mutex>
#include <shared_mutex>

#include "backend/backend.h"
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
  void matmul(const TensorView& a, bool trans_a, const TensorView& b, bool trans_b, const TensorView& c, float alpha,
              float beta) override {
    const std::shared_lock op(ops_mutex());
    cpu::matmul(check_matmul(a, trans_a, b, trans_b, c), a, trans_a, b, trans_b, c, alpha, beta);
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
  void softmax(const TensorView& x, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    check_same_shape("softmax", x, y);
    check_f32("softmax", "y", y);
    KK_CHECK(x.rank() >= 1, "softmax: x must have at least one dimension");
    cpu::softmax(x, y);
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
  void upsample_nearest2x(const TensorView& x, const TensorView& y) override {
    const std::shared_lock op(ops_mutex());
    check_upsample_nearest2x(x, y);
    cpu::upsample_nearest2x(x, y);
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
  // Full attention holds one Tq x Tk score matrix per thread, sliced `slice_size` of them, flash a tile (under
  // 1 MB: not counted); Auto runs full attention up to 512 keys and flash beyond.
  int64_t attention_scratch_bytes(const AttentionParams& attention, int64_t tokens, int64_t keys) const override {
    const int64_t matrix = tokens * keys * int64_t(sizeof(float));
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
