#include "nn/upload_weights.h"

namespace kakusan {

void WeightUploader::tensor(const std::string& name, Tensor& param, const Shape& shape) {
  KK_CHECK(param.defined(), "upload_weights: ", name, " is not loaded");
  KK_CHECK(param.shape() == shape, "upload_weights: ", name, " has shape ", param.shape(), ", expected ", shape);
  if (param.device() == backend_.device()) return;
  Tensor on_device = backend_.empty(param.shape(), param.dtype());
  backend_.upload(param, on_device);
  param = std::move(on_device);
}

}  // namespace kakusan
