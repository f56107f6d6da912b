// SeparateHeapBackend: a test backend whose memory behaves like a device's, to prove that model and
// pipeline code reach activations and weights only through the Backend interface.
//
// Its memory is its own heap, tagged Device::backend(kIndex), and stored scrambled (every 32-bit word XOR'ed
// with a constant), so host code that reads it gets garbage and host code that writes it leaves garbage.
// upload() and download() are the only ways in and out. Every op first checks that each operand is a view
// of this heap (else it throws, naming the op and the operand), unscrambles the operands into host
// temporaries, runs the inner backend (the reference by default) on them and scrambles the results back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

#include "backend/backend.h"

namespace kakusan::testing {

class SeparateHeapBackend final : public Backend {
 public:
  static constexpr int kIndex = 7;

  explicit SeparateHeapBackend(Backend& inner = reference_backend()) : inner_(inner) {}
  ~SeparateHeapBackend() override;

  const char* name() const override { return "separate-heap"; }
  Device device() const override { return Device::backend(kIndex); }
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  void upload(const TensorView& host, const TensorView& dst) override;
  void download(const TensorView& src, const TensorView& host) override;
  bool supports_compute_dtype(DType dtype) const override { return inner_.supports_compute_dtype(dtype); }

  // Bytes of this heap in use (tensors and arena chunks), and the most since reset_peak().
  size_t live_bytes() const;
  size_t peak_bytes() const;
  void reset_peak();
  // Whether [p, p + bytes) lies inside one block of this heap.
  bool owns(const void* p, size_t bytes) const;

  void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) override;
  void conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
              const TensorView& y) override;
  void group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta, float eps,
                  Activation act, const TensorView& y) override;
  void layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                  const TensorView& y) override;
  void attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                 const TensorView& out) override;
  void activation(const TensorView& x, Activation act, const TensorView& y) override;
  void add(const TensorView& a, const TensorView& b, const TensorView& y) override;
  void geglu(const TensorView& x, const TensorView& y) override;
  void resize_nearest(const TensorView& x, const TensorView& y) override;
  void scale(const TensorView& x, float alpha, const TensorView& y) override;
  void divide(const TensorView& x, float divisor, const TensorView& y) override;
  void cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) override;
  void timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift,
                          const TensorView& y) override;
  void embedding(const TensorView& table, const TensorView& ids, const TensorView& y) override;
  void gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) override;
  void blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) override;
  void copy(const TensorView& x, const TensorView& y) override;
  size_t scratch_bytes() const override { return inner_.scratch_bytes(); }
  void release_scratch() override { inner_.release_scratch(); }
  // What it tells the memory planner its device has (-1, the default: nothing, as a host backend).
  int64_t device_memory_limit() const override { return device_memory_limit_; }
  void set_device_memory_limit(int64_t bytes) { device_memory_limit_ = bytes; }
  // Whether it tells the memory planner that linear keeps an f16 copy of its input in scratch buffer 0, as
  // CudaBackend's f16 GEMMs do (off by default: no scratch, as a host backend).
  void tally_linear_scratch(const TensorView& x, const TensorView& w, const TensorView& bias,
                            ScratchTally& tally) const override;
  void set_reports_linear_scratch(bool on) { reports_linear_scratch_ = on; }

 private:
  class Operands;

  Backend& inner_;
  mutable std::mutex mutex_;
  std::map<uintptr_t, size_t> blocks_;  // base address -> bytes
  int64_t device_memory_limit_ = -1;
  size_t live_ = 0, peak_ = 0;
  bool reports_linear_scratch_ = false;
};

}  // namespace kakusan::testing
