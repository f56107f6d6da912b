// Finding the GPUs: whether the NVIDIA driver is there at all (libcuda, opened here rather than linked, so
// that a CUDA build still starts on a machine without it), how many devices it sees, and one backend per
// device, made on first use.
#include <dlfcn.h>

#include <map>
#include <memory>
#include <mutex>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_registration.h"

namespace kakusan {
namespace {

struct Probe {
  int devices = 0;
  std::string problem;  // why there is none, when devices == 0
};

Probe probe() {
  if (void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL); driver == nullptr)
    return {0, "no NVIDIA driver (libcuda) found"};
  // The handle is kept: the runtime opens the same library and uses it until the process ends.
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaErrorNoDevice || (status == cudaSuccess && count == 0))
    return {0, "driver found, 0 CUDA devices"};
  if (status == cudaErrorInsufficientDriver)
    return {0, str_cat("driver found, but it is older than this build's CUDA runtime ", CUDART_VERSION / 1000, ".",
                       CUDART_VERSION % 1000 / 10, " (", cudaGetErrorString(status), ")")};
  if (status != cudaSuccess) return {0, str_cat("driver found, but CUDA does not start: ", cudaGetErrorString(status))};
  return {count, ""};
}

const Probe& cached_probe() {
  static const Probe p = probe();
  return p;
}

}  // namespace

std::string cuda_unavailable_reason() { return cached_probe().problem; }

namespace cuda {

CudaBackend& cuda_backend(int index) {
  const Probe& found = cached_probe();
  KK_CHECK(found.devices > 0, "device cuda:", index, ": ", found.problem);
  KK_CHECK(index < found.devices, "device cuda:", index, " asked, ", found.devices, " CUDA device",
           found.devices == 1 ? "" : "s", " found (cuda:0",
           found.devices == 1 ? "" : str_cat("..cuda:", found.devices - 1),
           ")");
  static std::mutex mutex;
  static std::map<int, CudaBackend*> backends;  // never freed: pipelines hold references until exit
  std::lock_guard lock(mutex);
  CudaBackend*& be = backends[index];
  if (be == nullptr) be = new CudaBackend(index);
  return *be;
}

}  // namespace cuda

std::optional<CudaMemoryFigures> cuda_memory(Backend& backend) {
  auto* gpu = dynamic_cast<cuda::CudaBackend*>(&backend);
  if (gpu == nullptr) return std::nullopt;
  size_t free = 0, total = 0;
  gpu->memory_info(free, total);
  return CudaMemoryFigures{int64_t(gpu->peak_bytes()), int64_t(total - free)};
}

void cuda_reset_peak(Backend& backend) {
  if (auto* gpu = dynamic_cast<cuda::CudaBackend*>(&backend)) gpu->reset_peak();
}

BackendFactory cuda_backend_factory() {
  return [](int index) -> Backend& { return cuda::cuda_backend(index); };
}

}  // namespace kakusan
