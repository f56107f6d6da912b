#include "nn/upload_weights.h"

namespace kakusan {

Tensor device_copy_of(Backend& backend, const std::string& name, const Tensor& param, const Shape& shape) {
  KK_CHECK(param.defined(), "upload_weights: ", name, " is not loaded");
  KK_CHECK(param.shape() == shape, "upload_weights: ", name, " has shape ", param.shape(), ", expected ", shape);
  if (param.device() == backend.device()) return Tensor();
  Tensor on_device = backend.empty(param.shape(), param.dtype());
  backend.upload(param, on_device);
  return on_device;
}

void WeightUploader::tensor(const std::string& name, Tensor& param, const Shape& shape) {
  if (Tensor copy = device_copy_of(backend_, name, param, shape); copy.defined()) param = std::move(copy);
}

}  // namespace kakusan
