#include "nn/device_weights.h"

#include "nn/upload_weights.h"

namespace kakusan {

void DeviceWeights::Swapper::tensor(const std::string& name, Tensor& param, const Shape& shape) {
  if (except_.count(&param)) return;
  Tensor copy = device_copy_of(*owner_.backend_, name, param, shape);
  if (!copy.defined()) return;
  owner_.bytes_ += int64_t(copy.nbytes());
  owner_.held_.push_back({&param, std::exchange(param, std::move(copy))});
}

void DeviceWeights::drop_host_copies(const std::function<bool(const Tensor&)>& owned) {
  backend_->synchronize();  // every upload has read its host tensor
  for (Held& h : held_)
    if (!h.dropped && owned(h.host)) {
      h.host = Tensor();
      h.dropped = true;
    }
}

void DeviceWeights::release() {
  while (!held_.empty()) {
    Held& h = held_.back();
    if (h.dropped) {
      Tensor host = Tensor::empty(h.param->shape(), h.param->dtype());
      backend_->download(*h.param, host);
      h.host = std::move(host);
    }
    bytes_ -= int64_t(h.param->nbytes());
    *h.param = std::move(h.host);
    held_.pop_back();
  }
  bytes_ = 0;
}

}  // namespace kakusan
