// StagedTensor: a tensor that crosses between the host and a backend. Host code (the scheduler, the
// generator, the tokenizer, image output) fills or reads host(); the backend's ops use on_backend(). On a host
// backend both are the same memory and upload()/download() do nothing, so the CPU path copies nothing; on a
// device backend they are the one copy each way at the boundary.
#pragma once

#include "backend/backend.h"

namespace kakusan {

class StagedTensor {
 public:
  StagedTensor(Backend& backend, Shape shape, DType dtype = DType::F32)
      : backend_(&backend), host_(Tensor::empty(shape, dtype)) {
    if (!backend.device().is_host()) device_ = backend.empty(shape, dtype);
  }

  Tensor& host() { return host_; }
  const Tensor& host() const { return host_; }
  TensorView on_backend() const { return device_.defined() ? device_.view() : host_.view(); }

  void upload() {
    if (device_.defined()) backend_->upload(host_, device_);
  }
  void download() {
    if (device_.defined()) backend_->download(device_, host_);
  }

 private:
  Backend* backend_;
  Tensor host_;
  Tensor device_;  // undefined on a host backend
};

// A host copy of a backend's view (for inspection and results); host views are copied as they are.
inline Tensor host_copy(Backend& backend, const TensorView& view) {
  Tensor host = Tensor::empty(view.shape, view.dtype);
  if (view.on_host())
    convert_into(view, host);
  else
    backend.download(view, host);
  return host;
}

}  // namespace kakusan
