// SeparateHeapBackend: a test backend whose memory behaves like a device's, to prove that model and
// pipeline code reach activations and weights only through the Backend interface.
//
// Its memory is its own heap, tagged Device::backend(kIndex), and stored scrambled (every 32-bit word XOR'ed
// with a constant), so host code that reads it gets garbage and host code that writes it leaves garbage.
// upload() and download() are the only ways in and out. Every op first checks that each operand is a view
// of this heap (else it throws, naming the op and the operand), unscrambles the operands into host
// temporaries, runs the inner backend (the reference by default) on them and scrambles the results back.
//
// It captures as a device does (CUDA graphs, backend.h): between begin_capture() and end_capture() each op
// of the capturing thread is recorded, its operands by value (views: addresses and shapes), and NOT run;
// replay() runs the recorded ops again on those addresses (until release_scratch()). So a step replayed after
// its memory moved reads and writes the old places, and memory freed since fails the heap check: tests see
// what a GPU would do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

  bool begin_capture() override;
  std::unique_ptr<OpGraph> end_capture() override;
  void abort_capture() noexcept override;
  // How many recorded ops graphs have run again, in all (tests check that replay really ran).
  int64_t replayed_ops() const;

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
  // Also makes every graph recorded so far decline to replay, as a GPU backend's graphs do once the scratch
  // buffers they write are given back.
  void release_scratch() override;
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
  class Recording;

  // Runs `op` now, or records it when this thread is capturing.
  void run(std::function<void()> op);
  // Throws when this thread is capturing: `what` (an allocation, a transfer) cannot be recorded.
  void refuse_while_capturing(const char* what, size_t bytes = 0) const;
  bool capturing_here() const;

  Backend& inner_;
  mutable std::mutex mutex_;
  std::thread::id capturing_;                 // the thread recording now (none: not capturing)
  std::vector<std::function<void()>> recorded_;
  std::string broken_;                        // why the capture cannot be replayed (empty: it can)
  int64_t replayed_ops_ = 0;
  uint64_t scratch_generation_ = 0;           // bumped by release_scratch()
  std::map<uintptr_t, size_t> blocks_;  // base address -> bytes
  int64_t device_memory_limit_ = -1;
  size_t live_ = 0, peak_ = 0;
  bool reports_linear_scratch_ = false;
};

// A SeparateHeapBackend over the fast CPU kernels, registered as device `kind` on first call (the same one for
// later calls) and never destroyed: pipelines cached by the tests hold its memory until the process ends.
SeparateHeapBackend& registered_separate_heap(const std::string& kind);

}  // namespace kakusan::testing
