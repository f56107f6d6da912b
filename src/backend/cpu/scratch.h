// Reusable per-thread scratch memory for the CPU kernels: buffers grow to the largest size asked for and are
// then reused, so steady-state calls (every denoising step) allocate nothing.
#pragma once

#include <cstddef>

#include "core/tensor.h"

namespace kakusan::cpu {

class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer();

  // At least n floats, 64-byte aligned; contents are undefined. Valid until the next call.
  float* floats(size_t n);

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

// Each op takes its scratch from distinct slots so that nothing it holds is overwritten by a helper.
enum class Slot { Input, Input2, Input3, Weight, Bias, Beta, Output, Work, Count };

// This thread's buffer for `slot`.
ScratchBuffer& scratch(Slot slot);

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

}  // namespace kakusan::cpu
