#include "backend/cuda/libraries.h"

#include <dlfcn.h>

#include <string>

#include "core/error.h"

namespace kakusan::cuda {
namespace {

void* open(const std::string& file, const char* what) {
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  KK_CHECK(handle != nullptr, "cuda: ", what, " could not be loaded (", dlerror(),
           "); install it or add its folder to LD_LIBRARY_PATH");
  return handle;  // kept open until the process ends
}

template <typename Fn>
void bind(void* handle, const char* library, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  KK_CHECK(fn != nullptr, "cuda: ", library, " has no ", name, " (too old a version?)");
}

Libraries load() {
  Libraries l;
  const std::string blas = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
  const std::string dnn = "libcudnn.so." + std::to_string(CUDNN_MAJOR);
  void* blas_handle = open(blas, ("cuBLASLt " + blas).c_str());
  void* dnn_handle = open(dnn, ("cuDNN " + dnn).c_str());
#define KK_BIND_BLAS(name) bind(blas_handle, blas.c_str(), #name, l.name);
#define KK_BIND_DNN(name) bind(dnn_handle, dnn.c_str(), #name, l.name);
  KK_CUBLASLT_FUNCTIONS(KK_BIND_BLAS)
  KK_CUDNN_FUNCTIONS(KK_BIND_DNN)
#undef KK_BIND_BLAS
#undef KK_BIND_DNN
  return l;
}

}  // namespace

const Libraries& lib() {
  static const Libraries libraries = load();  // a failed load throws and is retried on the next call
  return libraries;
}

}  // namespace kakusan::cuda
