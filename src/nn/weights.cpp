#include "nn/weights.h"

#include <algorithm>
#include <set>

namespace kakusan {

void WeightLoader::tensor(const std::string& name, Tensor& param, const Shape& shape) {
  const WeightStore::Found* found = store_.find(name);
  if (found == nullptr) {
    missing_.push_back(name + " " + shape.str());
    return;
  }
  used_.push_back(name);
  const TensorView view = found->file->view(found->file_name);
  if (!(view.shape == shape)) {
    mismatched_.push_back(str_cat(name, ": expected ", shape.str(), ", file has ", view.shape.str()));
    return;
  }
  if (!is_float(view.dtype)) {
    mismatched_.push_back(str_cat(name, ": expected a floating-point dtype, file has ", dtype_name(view.dtype)));
    return;
  }
  const DType want = shape.rank() >= 2 ? weight_dtype_ : DType::F32;
  param = view.dtype == want ? found->file->borrow(found->file_name) : Tensor::copy_of(view).to(want);
}

void WeightLoader::finish(const std::string& component) const {
  const std::set<std::string> used(used_.begin(), used_.end());
  std::vector<std::string> unexpected;
  for (const std::string& name : store_.names())
    if (!used.count(name) && !WeightStore::is_ignorable(name)) unexpected.push_back(name);
  if (missing_.empty() && mismatched_.empty() && unexpected.empty()) return;

  std::string message = str_cat(component, " (", store_.describe(), ") does not match its config:");
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    message += str_cat("\n  ", names.size(), " ", what, ":");
    const size_t shown = std::min<size_t>(names.size(), 20);
    for (size_t i = 0; i < shown; ++i) message += "\n    " + names[i];
    if (shown < names.size()) message += str_cat("\n    ... and ", names.size() - shown, " more");
  };
  list("missing tensors", missing_);
  list("tensors with the wrong shape or dtype", mismatched_);
  list("unexpected tensors", unexpected);
  throw Error(message);
}

void ParameterCounter::tensor(const std::string&, Tensor&, const Shape& shape) {
  ++tensors;
  elements += shape.numel();
}

}  // namespace kakusan
