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

void DeviceWeights::release() {
  for (auto it = held_.rbegin(); it != held_.rend(); ++it) *it->param = std::move(it->host);
  held_.clear();
  bytes_ = 0;
}

}  // namespace kakusan
