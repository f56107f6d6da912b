// CudaBackend: the Backend on one NVIDIA GPU (cuBLASLt GEMMs, cuDNN convolutions, the kernels of *.cu).
//
// Everything runs in order on one stream: ops enqueue and return (no host synchronisation inside an op,
// except embedding, which reads back whether every id was in range), download synchronises. Memory comes
// from the device's stream-ordered pool (cudaMallocAsync), which keeps freed blocks for reuse; the backend
// counts its live and peak bytes. Ops are serialised by a mutex, so two pipelines may share the device.
//
// Capture (backend.h; cuda_graph.cpp) is CUDA stream capture of that stream, thread-local: the capturing
// thread holds the op mutex (recursive) from begin_capture to end_capture, so another thread's ops and
// allocations wait instead of landing in the graph. Allocating, freeing, growing scratch and synchronising
// are refused while capturing; a graph records the scratch buffers it used and declines to replay once they
// have been replaced.
//
// Products take their weight's precision (backend.h): with f16 / bf16 weights, linear and conv2d convert the
// activation to that dtype in scratch and multiply on the tensor cores with f32 accumulation; f32 weights
// multiply in true f32 (no TF32), so fp32 runs match the CPU's goldens.
#pragma once

#include <compare>
#include <cstddef>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend/backend.h"
#include "backend/cuda/kernels.h"

namespace kakusan::cuda {

// One convolution as cuDNN sees it: x is [batch, channels, height, width] already padded when the padding is
// asymmetric (then pad_h = pad_w = 0), the weight [out_channels, channels, kernel_h, kernel_w].
struct ConvShape {
  int64_t batch, channels, height, width, out_channels, kernel_h, kernel_w, pad_h, pad_w, stride;
  int64_t out_height() const { return (height + 2 * pad_h - kernel_h) / stride + 1; }
  int64_t out_width() const { return (width + 2 * pad_w - kernel_w) / stride + 1; }
  auto operator<=>(const ConvShape&) const = default;
};

// How a convolution's tensors lie in memory (the weight as [K, C, R, S] or [K, R, S, C]). The backend's
// tensors are NCHW; NHWC is measured by the layout probe (tests/cuda/test_cuda_conv_probe.cpp).
enum class ConvLayout { NCHW, NHWC };

// Which cuDNN API computes f16/bf16 convolutions: the descriptor API (cuDNN's precompiled engines; its output
// is rounded to f16/bf16 before an f32 bias kernel: one rounding more than backend.h's contract) unless the
// environment variable KAKUSAN_CUDA_CONV is "graph" (the graph API: f32 output, bias fused; the engines cuDNN
// offers for it compile at run time, a first-step cost no GPU has measured yet — the device check's layout
// probe times both, and the default follows that measurement). f32 convolutions always take the descriptor API.
enum class ConvApi { Graph, Descriptor };
ConvApi conv_api_for(const char* env_value);
// Whether a convolution is offered to the graph API: f16/bf16 weights, `api` Graph, and every operand (null:
// absent) 16-byte aligned, as the graph's tensors promise. cuDNN may still refuse the shape (then: fallback).
bool conv_offers_graph(DType weight, ConvApi api, std::initializer_list<const void*> operands);

class CudaBackend final : public Backend {
 public:
  // `conv_api`: as KAKUSAN_CUDA_CONV says when not given (tests ask for one).
  explicit CudaBackend(int index, std::optional<ConvApi> conv_api = std::nullopt);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return name_.c_str(); }
  Device device() const override { return Device::backend(index_); }
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  void upload(const TensorView& host, const TensorView& dst) override;
  void download(const TensorView& src, const TensorView& host) override;

  bool has_f16_products() const override { return true; }
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
  size_t scratch_bytes() const override;
  void release_scratch() override;
  bool begin_capture() override;
  std::unique_ptr<OpGraph> end_capture() override;
  void abort_capture() noexcept override;
  // cudaMemGetInfo's free bytes plus what this backend's pool already reserved (its tensors, arenas and
  // freed blocks it keeps for reuse).
  int64_t device_memory_limit() const override;

  // The scratch each op grows (for the memory planner, through the tally_* overrides): the rules of linear.cpp,
  // conv2d.cpp and attention in ops.cpp, kept beside each other in scratch_plan.cpp. Static, so that they are
  // testable without a GPU.
  static void linear_scratch(const TensorView& x, const TensorView& w, const TensorView& bias, ScratchTally& tally);
  static void conv2d_scratch(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                             const TensorView& y, ScratchTally& tally);
  static void attention_scratch(const TensorView& q, const TensorView& k, const TensorView& v, ScratchTally& tally);
  void tally_linear_scratch(const TensorView& x, const TensorView& w, const TensorView& bias,
                            ScratchTally& tally) const override {
    linear_scratch(x, w, bias, tally);
  }
  void tally_conv2d_scratch(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                            const TensorView& y, ScratchTally& tally) const override {
    conv2d_scratch(x, w, bias, p, y, tally);
  }
  void tally_attention_scratch(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams&,
                               ScratchTally& tally) const override {
    attention_scratch(q, k, v, tally);
  }
  // cuBLASLt's workspace for every GEMM, and the most cuDNN's chosen convolution algorithm may take.
  static constexpr size_t kGemmWorkspace = size_t(32) << 20;
  static constexpr size_t kConvWorkspaceLimit = size_t(256) << 20;

  struct GemmPlan;       // cuBLASLt descriptors and algorithm for one shape (plans.h)
  struct ConvPlan;       // cuDNN descriptors and algorithm for one shape (plans.h)
  struct ConvGraphPlan;  // a finalized cuDNN graph-API execution plan for one shape (plans.h)

  // f16/bf16 shapes whose graph was refused (no engine, a failed finalize) and which took the descriptor API
  // instead: each counted once, when its plan was first asked for.
  int conv_graph_fallbacks() const { return conv_graph_fallbacks_; }
  // cuDNN's reason for the latest refusal (empty: none yet).
  const std::string& last_conv_graph_refusal() const { return last_conv_graph_refusal_; }
  // Making a graph plan may compile a kernel (cuDNN's runtime-fusion engines, through NVRTC: possibly a second
  // or more per shape, paid on the first step). Once this backend has spent the budget on plans, shapes not yet
  // planned take the descriptor API (counted as fallbacks): the first step's cost stays bounded.
  static constexpr double kConvGraphPlanBudgetMs = 20000;
  double conv_graph_plan_ms() const { return conv_graph_plan_ms_; }
  void set_conv_graph_plan_budget_ms(double ms) { conv_graph_plan_budget_ms_ = ms; }  // tests

  void synchronize() override;
  // Device memory: what this backend holds now and at most (tensors, arenas and scratch), and the device's
  // free and total bytes (cudaMemGetInfo).
  size_t live_bytes() const;
  size_t peak_bytes() const;
  void reset_peak();
  void memory_info(size_t& free, size_t& total);

 private:
  // Scratch buffers, one per purpose so that an op's operands never share one; each grows to the largest
  // size asked and stays (stream order makes reuse by the next op safe).
  enum Slot { kInput, kWeight, kOutput, kBias, kOperand2, kWorkspace, kSlotCount };
  static_assert(kSlotCount <= ScratchTally::kBuffers);

  struct Guard;  // the op mutex + this device current on the calling thread
  class Graph;   // an instantiated CUDA graph (cuda_graph.cpp)

  // With the op mutex held: throws when this thread is capturing, for what cannot be captured.
  void refuse_while_capturing(const char* what) const;
  // Ends the capture state (the stream's capture already ended): frees what was freed meanwhile, lets other
  // threads in again.
  void finish_capture();

  void* scratch(Slot slot, size_t bytes);
  void require_mine(const char* op, const char* what, const TensorView& v) const;
  // v as dense memory of `dtype`: v itself when it already is, else a converted copy in `slot`.
  const void* dense(const TensorView& v, DType dtype, Slot slot);
  // Converts any view into a contiguous destination of the same shape on this device.
  void copy_into(const TensorView& x, void* dst, DType dst_dtype);
  GemmPlan& gemm_plan(int64_t m, int64_t n, int64_t k, DType dtype, bool bias, const void* ptrs[4]);
  ConvPlan& conv_plan(const ConvShape& shape, DType dtype);
  // The graph plan of a narrow convolution, made on first use; nullptr when cuDNN refused the graph (then
  // remembered, and counted in conv_graph_fallbacks_).
  ConvGraphPlan* conv_graph_plan(const ConvShape& shape, DType dtype, bool bias);

  int index_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t blas_ = nullptr;
  cudnnHandle_t dnn_ = nullptr;
  mutable std::recursive_mutex mutex_;
  // Capture state, under mutex_: the capturing thread (none: not capturing) holds capture_lock_ until the
  // capture ends; frees asked for meanwhile wait in deferred_frees_ (a free would be recorded in the graph).
  std::thread::id capturing_;
  std::unique_lock<std::recursive_mutex> capture_lock_;
  std::vector<std::pair<void*, size_t>> deferred_frees_;
  std::string capture_broken_;     // why the capture cannot be replayed (empty: it can)
  uint64_t scratch_generation_ = 0;  // changes whenever a scratch buffer is replaced or given back
  struct Buffer {
    void* p = nullptr;
    size_t bytes = 0;
  };
  Buffer slots_[kSlotCount];
  unsigned long long* bad_id_ = nullptr;  // embedding's out-of-range report (device memory)
  std::map<std::tuple<int64_t, int64_t, int64_t, int, bool, int>, std::unique_ptr<GemmPlan>> gemm_plans_;
  std::map<std::pair<ConvShape, int>, std::unique_ptr<ConvPlan>> conv_plans_;
  std::map<std::tuple<ConvShape, int, bool>, std::unique_ptr<ConvGraphPlan>> conv_graph_plans_;
  ConvApi conv_api_;
  int conv_graph_fallbacks_ = 0;
  double conv_graph_plan_ms_ = 0, conv_graph_plan_budget_ms_ = kConvGraphPlanBudgetMs;
  std::string last_conv_graph_refusal_;
  mutable std::mutex memory_mutex_;
  size_t live_ = 0, peak_ = 0;
};

// The backend of device `index` (made on first use; throws when that device cannot be used).
CudaBackend& cuda_backend(int index);

}  // namespace kakusan::cuda
