// CudaBackend's capture (backend.h's seam): CUDA stream capture of the backend's stream into a graph,
// instantiated once and launched by replay().
//
// Thread-local capture mode: only this thread's unsafe calls (a synchronisation, cudaMalloc) would break the
// capture, and the backend refuses those itself with a clear error first. Other threads cannot add work to
// the stream meanwhile: the capturing thread holds the op mutex, which allocate/deallocate take too.
#include <memory>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/guard.h"

namespace kakusan::cuda {

class CudaBackend::Graph final : public OpGraph {
 public:
  Graph(CudaBackend& backend, cudaGraphExec_t exec, uint64_t scratch_generation)
      : backend_(backend), exec_(exec), scratch_generation_(scratch_generation) {}
  // An executable graph still running is freed when it completes (cudaGraphExecDestroy's contract).
  ~Graph() override {
    cudaSetDevice(backend_.index_);
    cudaGraphExecDestroy(exec_);
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  bool replay() override {
    Guard guard(backend_);
    KK_CHECK(backend_.capturing_ == std::thread::id(), backend_.name_,
             ": cannot replay a CUDA graph while capturing another");
    // The graph writes the scratch buffers it was captured with: once one was replaced, it would write
    // freed memory.
    if (scratch_generation_ != backend_.scratch_generation_) return false;
    check(cudaGraphLaunch(exec_, backend_.stream_), "graph replay");
    return true;
  }

 private:
  CudaBackend& backend_;
  cudaGraphExec_t exec_;
  uint64_t scratch_generation_;
};

bool CudaBackend::begin_capture() {
  std::unique_lock lock(mutex_);
  KK_CHECK(capturing_ == std::thread::id(), name_, ": begin_capture while this thread is capturing already");
  check(cudaSetDevice(index_), "select device");
  check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin graph capture");
  capturing_ = std::this_thread::get_id();
  capture_broken_.clear();
  capture_lock_ = std::move(lock);  // held until the capture ends: other threads' ops wait
  return true;
}

void CudaBackend::finish_capture() {
  capturing_ = {};
  for (const auto& [p, bytes] : std::exchange(deferred_frees_, {})) deallocate(p, bytes);
  std::unique_lock release = std::move(capture_lock_);  // unlocks at return (the caller still holds its own)
}

std::unique_ptr<OpGraph> CudaBackend::end_capture() {
  Guard guard(*this);
  KK_CHECK(capturing_ == std::this_thread::get_id(), name_, ": end_capture without begin_capture on this thread");
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  const uint64_t generation = scratch_generation_;  // scratch cannot change while capturing
  const std::string broken = std::exchange(capture_broken_, {});
  finish_capture();
  if (ended != cudaSuccess || !broken.empty()) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();  // an invalidated capture's error is not sticky: clear it for the next op's check
    KK_CHECK(broken.empty(), name_, ": the captured CUDA graph cannot be replayed: ", broken);
    check(ended, "end graph capture");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess) cudaGetLastError();  // not left for the next launch check to report as its own
  check(made, "instantiate graph");
  return std::make_unique<Graph>(*this, exec, generation);
}

void CudaBackend::abort_capture() noexcept {
  std::lock_guard lock(mutex_);
  if (capturing_ != std::this_thread::get_id()) return;
  cudaSetDevice(index_);
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream_, &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  capture_broken_.clear();
  finish_capture();
}

}  // namespace kakusan::cuda
