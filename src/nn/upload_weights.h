// upload_weights: moves a loaded model's parameters into a backend's memory, through the one weight walk.
//
// On a host backend it does nothing (the weights already are host memory: mapped files stay zero-copy);
// on a device backend each parameter is copied once into a tensor the backend owns, and the host copy
// (or the mapping's reference) is let go.
#pragma once

#include "backend/backend.h"
#include "nn/weights.h"

namespace kakusan {

// `param` (checked against `shape`; `name` for errors) copied into `backend`'s memory, or an undefined tensor
// when it already is there. The one step of upload_weights and of DeviceWeights (device_weights.h).
Tensor device_copy_of(Backend& backend, const std::string& name, const Tensor& param, const Shape& shape);

class WeightUploader final : public WeightVisitor {
 public:
  explicit WeightUploader(Backend& backend) : backend_(backend) {}

  void tensor(const std::string& name, Tensor& param, const Shape& shape) override;

 private:
  Backend& backend_;
};

template <typename Module>
void upload_weights(Module& module, Backend& backend) {
  if (backend.device().is_host()) return;
  WeightUploader uploader(backend);
  module.visit(uploader);
}

}  // namespace kakusan
