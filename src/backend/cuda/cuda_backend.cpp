// CudaBackend's lifecycle, memory (stream-ordered pool, live/peak counts, scratch slots) and transfers.
// The ops live in ops.cpp (small kernels), linear.cpp (cuBLASLt) and conv2d.cpp (cuDNN).
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/guard.h"
#include "backend/cuda/libraries.h"
#include "backend/cuda/plans.h"

namespace kakusan::cuda {

static_assert(int(DType::F32) == kF32 && int(DType::F16) == kF16 && int(DType::BF16) == kBF16 &&
              int(DType::I64) == kI64, "kernels.h's Dt mirrors kakusan::DType");

CudaBackend::CudaBackend(int index, std::optional<ConvApi> conv_api)
    : index_(index),
      name_("cuda:" + std::to_string(index)),
      conv_api_(conv_api.value_or(conv_api_for(std::getenv("KAKUSAN_CUDA_CONV")))) {
  check(cudaSetDevice(index), "select device");
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "create stream");
  // Freed blocks stay in the device's pool for the next allocation instead of going back to the driver at
  // every synchronisation (arenas are made and dropped per phase).
  cudaMemPool_t pool = nullptr;
  check(cudaDeviceGetDefaultMemPool(&pool, index), "memory pool");
  uint64_t keep = UINT64_MAX;
  check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "memory pool threshold");
  check(lib().cublasLtCreate(&blas_), "create cuBLASLt handle");
  check(lib().cudnnCreate(&dnn_), "create cuDNN handle");
  check(lib().cudnnSetStream(dnn_, stream_), "cuDNN stream");
  check(cudaMallocAsync(reinterpret_cast<void**>(&bad_id_), sizeof(*bad_id_), stream_), "allocate");
}

// Backends live until the process ends (registry.h); by then the CUDA runtime may be gone, so nothing here
// may throw, and failures are ignored.
CudaBackend::~CudaBackend() {
  for (Buffer& b : slots_)
    if (b.p) cudaFreeAsync(b.p, stream_);
  cudaFreeAsync(bad_id_, stream_);
  cudaStreamSynchronize(stream_);
  conv_graph_plans_.clear();  // execution plans hold on to the handle: released before it
  lib().cudnnDestroy(dnn_);
  lib().cublasLtDestroy(blas_);
  cudaStreamDestroy(stream_);
}

// The op mutex keeps another thread's capture from recording this allocation (it waits for the capture's end).
void* CudaBackend::allocate(size_t bytes) {
  std::lock_guard op(mutex_);
  KK_CHECK(capturing_ == std::thread::id(), name_, ": cannot allocate ", bytes, " bytes while capturing a CUDA "
           "graph (a captured step may only use memory that exists: run it once eagerly first)");
  if (cudaSetDevice(index_) != cudaSuccess) return nullptr;
  void* p = nullptr;
  if (cudaMallocAsync(&p, bytes, stream_) != cudaSuccess) {
    cudaGetLastError();  // out of memory is not sticky; clear it so the next launch check does not see it
    return nullptr;
  }
  std::lock_guard lock(memory_mutex_);
  live_ += bytes;
  peak_ = std::max(peak_, live_);
  return p;
}

void CudaBackend::deallocate(void* p, size_t bytes) {
  if (p == nullptr) return;
  std::lock_guard op(mutex_);
  if (capturing_ != std::thread::id()) {  // this thread's capture: a free node would free it at every replay
    deferred_frees_.emplace_back(p, bytes);
    if (capture_broken_.empty()) capture_broken_ = str_cat(bytes, " bytes of device memory were freed while capturing");
    return;
  }
  // Stream-ordered: after every op already enqueued on the memory. A failure here (the context being torn
  // down) is not left for the next launch check to report as its own.
  if (cudaSetDevice(index_) != cudaSuccess || cudaFreeAsync(p, stream_) != cudaSuccess) cudaGetLastError();
  std::lock_guard lock(memory_mutex_);
  live_ -= std::min(live_, bytes);
}

size_t CudaBackend::live_bytes() const {
  std::lock_guard lock(memory_mutex_);
  return live_;
}

size_t CudaBackend::peak_bytes() const {
  std::lock_guard lock(memory_mutex_);
  return peak_;
}

void CudaBackend::reset_peak() {
  std::lock_guard lock(memory_mutex_);
  peak_ = live_;
}

void CudaBackend::memory_info(size_t& free, size_t& total) {
  Guard guard(*this);
  refuse_while_capturing("memory_info");
  check(cudaMemGetInfo(&free, &total), "memory info");
}

int64_t CudaBackend::device_memory_limit() const {
  check(cudaSetDevice(index_), "select device");
  size_t free = 0, total = 0;
  check(cudaMemGetInfo(&free, &total), "memory info");
  cudaMemPool_t pool = nullptr;
  uint64_t reserved = 0;
  check(cudaDeviceGetDefaultMemPool(&pool, index_), "memory pool");
  check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved), "memory pool");
  return int64_t(free + reserved);
}

void CudaBackend::synchronize() {
  Guard guard(*this);
  refuse_while_capturing("synchronize");
  check(cudaStreamSynchronize(stream_), "synchronize");
}

void* CudaBackend::scratch(Slot slot, size_t bytes) {
  Buffer& b = slots_[slot];
  if (b.bytes >= bytes) return b.p;
  KK_CHECK(capturing_ == std::thread::id(), name_, ": a scratch buffer would grow from ", b.bytes, " to ", bytes,
           " bytes while capturing a CUDA graph (run the step once eagerly first)");
  ++scratch_generation_;  // graphs that used the old buffer must not replay
  if (b.p) deallocate(b.p, b.bytes);
  b = {};
  void* p = allocate(bytes);
  KK_CHECK(p != nullptr, "cuda: out of device memory for ", bytes, " bytes of scratch");
  b = {p, bytes};
  return p;
}

size_t CudaBackend::scratch_bytes() const {
  std::lock_guard lock(mutex_);
  size_t total = 0;
  for (const Buffer& b : slots_) total += b.bytes;
  return total;
}

void CudaBackend::release_scratch() {
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;  // an op runs on another thread: its buffers stay
  if (capturing_ != std::thread::id()) return;  // the graph being captured uses them
  cudaSetDevice(index_);
  ++scratch_generation_;
  for (Buffer& b : slots_) {
    deallocate(b.p, b.bytes);
    b = {};
  }
}

void CudaBackend::refuse_while_capturing(const char* what) const {
  KK_CHECK(capturing_ == std::thread::id(), name_, " ", what, ": not while capturing a CUDA graph (it waits for "
           "the device)");
}

void CudaBackend::require_mine(const char* op, const char* what, const TensorView& v) const {
  KK_CHECK(v.empty() || v.device == device(), name_, " ", op, ": ", what, " is ", v.device.str(),
           " memory, not this GPU's (", device().str(), "); upload it first");
}

Layout layout_of(const TensorView& v) {
  KK_CHECK(v.rank() <= 8, "cuda: views of rank ", v.rank(), " are not supported (at most 8)");
  Layout l;
  l.rank = v.rank();
  for (int d = 0; d < v.rank(); ++d) {
    l.shape[d] = v.shape[d];
    l.strides[d] = v.strides[d];
  }
  return l;
}

void CudaBackend::copy_into(const TensorView& x, void* dst, DType dst_dtype) {
  const int64_t n = x.numel();
  if (x.is_contiguous() && x.dtype == dst_dtype) {
    check(cudaMemcpyAsync(dst, x.data, x.nbytes(), cudaMemcpyDeviceToDevice, stream_), "copy");
  } else if (x.is_contiguous()) {
    check(launch_convert(x.data, Dt(x.dtype), dst, Dt(dst_dtype), n, stream_), "convert");
  } else {
    const TensorView to(dst, dst_dtype, device(), x.shape);
    check(launch_strided_copy(x.data, Dt(x.dtype), layout_of(x), dst, Dt(dst_dtype), layout_of(to), n, stream_),
          "strided copy");
  }
}

const void* CudaBackend::dense(const TensorView& v, DType dtype, Slot slot) {
  if (v.is_contiguous() && v.dtype == dtype) return v.data;
  void* p = scratch(slot, std::max<size_t>(size_t(v.numel()) * dtype_size(dtype), 1));
  copy_into(v, p, dtype);
  return p;
}

// Host memory here is pageable: cudaMemcpyAsync from it returns once the bytes are staged, so the host
// buffer may be reused or freed as soon as the call returns (CUDA's documented behaviour for pageable memory).
void CudaBackend::upload(const TensorView& host, const TensorView& dst) {
  check_upload(*this, host, dst);
  Guard guard(*this);
  refuse_while_capturing("upload");
  if (host.is_contiguous() && host.dtype == dst.dtype) {
    check(cudaMemcpyAsync(dst.data, host.data, dst.nbytes(), cudaMemcpyHostToDevice, stream_), "upload");
    return;
  }
  Tensor staged = Tensor::empty(host.shape, dst.dtype);  // strides and dtype settled on the host
  convert_into(host, staged);
  check(cudaMemcpyAsync(dst.data, staged.data(), dst.nbytes(), cudaMemcpyHostToDevice, stream_), "upload");
  check(cudaStreamSynchronize(stream_), "upload");
}

void CudaBackend::download(const TensorView& src, const TensorView& host) {
  check_download(*this, src, host);
  Guard guard(*this);
  refuse_while_capturing("download");
  const void* from = dense(src, host.dtype, kOutput);
  check(cudaMemcpyAsync(host.data, from, host.nbytes(), cudaMemcpyDeviceToHost, stream_), "download");
  check(cudaStreamSynchronize(stream_), "download");
}

}  // namespace kakusan::cuda
