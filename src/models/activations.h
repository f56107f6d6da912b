// Named intermediate activations captured during a forward pass, so a mismatch against diffusers can be
// located block by block (the golden kit stores the same names). Recording downloads a host copy through the
// backend that holds the activation; pass nullptr (the default everywhere) and nothing is recorded or copied.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"

namespace kakusan {

class Activations {
 public:
  void record(Backend& backend, const std::string& name, const TensorView& value) {
    Tensor host = Tensor::empty(value.shape, value.dtype);
    backend.download(value, host);
    entries_.emplace_back(name, std::move(host));
  }
  // nullptr if nothing was recorded under `name`.
  const Tensor* find(const std::string& name) const {
    for (const auto& [n, t] : entries_)
      if (n == name) return &t;
    return nullptr;
  }
  const std::vector<std::pair<std::string, Tensor>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, Tensor>> entries_;
};

// Records only when tracing is on.
inline void record(Activations* trace, Backend& backend, const std::string& name, const TensorView& value) {
  if (trace != nullptr) trace->record(backend, name, value);
}

}  // namespace kakusan
