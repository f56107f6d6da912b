// Reusable per-thread scratch memory for the CPU kernels: buffers grow to the largest size asked for and are
// then reused, so steady-state calls (every denoising step) allocate nothing.
#pragma once

#include <cstddef>

#include "core/tensor.h"

namespace kakusan::cpu {

class ScratchBuffer {
 public:
  ScratchBuffer();
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer();

  // At least n floats, 64-byte aligned; contents are undefined. Valid until the next call.
  float* floats(size_t n);
  // Gives the memory back (the next floats() allocates again).
  void release();

 private:
  friend void release_all_scratch();
  void release_locked();  // with the registry's lock held

  float* data_ = nullptr;
  size_t capacity_ = 0;
};

// The bounds (in floats) that keep the kernels' scratch small, whatever the tensor sizes: f16/bf16 weights are
// widened in blocks of at most `weight_panel` floats per thread, an im2col tile holds at most `im2col` floats, and
// Winograd holds at most `winograd_weights` of transformed weights U (a panel of output channels) and
// `winograd_inputs` each of transformed inputs V (a chunk of input channels) and products M. Smaller limits
// cost speed: each panel redoes the input transform. Tests shrink them to reach the multi-panel paths.
struct ScratchLimits {
  int64_t weight_panel = int64_t(1) << 17;      // 512 KB per thread: a widened panel stays in its core's L2
  int64_t im2col = int64_t(1) << 22;            // 16 MB, as U, whose buffer it shares; a widened weight is
                                                // widened once per tile (its chunks of input channels)
  int64_t winograd_weights = int64_t(1) << 22;  // 16 MB
  int64_t winograd_inputs = int64_t(1) << 22;   // 16 MB
  int64_t rounded_input = int64_t(1) << 22;     // 16 MB: a block of a bf16-weight linear's input rows, rounded
};
ScratchLimits& scratch_limits();

// Each op takes its scratch from distinct slots so that nothing it holds is overwritten by a helper.
enum class Slot { Input, Input2, Input3, Weight, Bias, Beta, Output, Work, Rounded, Gemm, Count };

// This thread's buffer for `slot`.
ScratchBuffer& scratch(Slot slot);

// Bytes held by every thread's scratch buffers together.
size_t scratch_bytes();
// Frees every thread's scratch buffers. No kernel may be running (cpu_backend().release_scratch() makes sure
// of that): the pipeline calls it between phases, so the UNet's buffers are not held through the VAE decode.
void release_all_scratch();

// `v` itself when it is dense float32, otherwise a dense float32 copy in scratch(slot).
TensorView dense_f32(const TensorView& v, Slot slot);

// A float pointer to a per-channel parameter (bias, gamma, beta), or nullptr when the view is empty.
const float* param_f32(const TensorView& v, Slot slot);

// An output written densely: the target itself when it is dense float32, else a scratch buffer copied into
// the target by finish().
class DenseOutput {
 public:
  DenseOutput(const TensorView& target, Slot slot);
  float* data() const { return dense_.f32(); }
  const TensorView& view() const { return dense_; }
  void finish() const;

 private:
  TensorView target_, dense_;
};

// Strided copy with dtype conversion (the backend's copy op), threaded over rows.
void copy_strided(const TensorView& x, const TensorView& y);

// dst[i] = src[i] as float32 for n contiguous elements of `dtype` (f32, f16, bf16), on the calling thread.
void widen_to_f32(const void* src, DType dtype, float* dst, int64_t n);

}  // namespace kakusan::cpu
