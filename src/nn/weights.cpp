#include "nn/weights.h"

#include <algorithm>
#include <set>

namespace kakusan {

void WeightLoader::tensor(const std::string& name, Tensor& param, const Shape& shape) {
  std::optional<WeightRef> found = source_.get(name);
  if (!found) {
    missing_.push_back(name + " " + shape.str());
    return;
  }
  used_.push_back(name);
  const TensorView& view = found->view;
  KK_ASSERT(view.is_contiguous());  // every source yields dense views (splits are row ranges)
  // Where the source found it, when that is not simply the file's tensor of this name.
  const std::string stored = found->stored_as.empty() ? "" : str_cat(" (", found->stored_as, ")");
  if (!(view.shape == shape)) {
    mismatched_.push_back(str_cat(name, ": expected ", shape.str(), ", file has ", view.shape.str(), stored));
    return;
  }
  if (!is_float(view.dtype)) {
    mismatched_.push_back(
        str_cat(name, ": expected a floating-point dtype, file has ", dtype_name(view.dtype), stored));
    return;
  }
  const DType want = shape.rank() >= 2 ? weight_dtype_ : DType::F32;
  if (view.dtype == want) {
    param = Tensor::borrow(view, std::move(found->owner));
    (found->mapped ? mapped_bytes_ : owned_bytes_) += int64_t(param.nbytes());
  } else {
    param = Tensor::copy_of(view).to(want);
    owned_bytes_ += int64_t(param.nbytes());
  }
}

void WeightLoader::finish(const std::string& component) const {
  const std::set<std::string> used(used_.begin(), used_.end());
  std::vector<std::string> unexpected;
  for (const std::string& name : source_.names())
    if (!used.count(name) && !WeightSource::is_ignorable(name)) unexpected.push_back(name);
  if (missing_.empty() && mismatched_.empty() && unexpected.empty()) return;

  std::string message = str_cat(component, " (", source_.describe(), ") does not match its config:");
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
