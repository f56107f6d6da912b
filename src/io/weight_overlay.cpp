#include "io/weight_overlay.h"

#include "core/error.h"

namespace kakusan {

OverlaySource::OverlaySource(std::shared_ptr<const WeightSource> base,
                             std::vector<std::pair<std::string, Tensor>> replacements)
    : base_(std::move(base)) {
  for (auto& [name, tensor] : replacements) {
    const std::optional<WeightRef> replaced = base_->get(name);
    KK_CHECK(replaced.has_value(), base_->describe(), ": an owned copy of '", name, "' replaces no tensor of it");
    KK_CHECK(tensor.shape() == replaced->view.shape && is_float(tensor.dtype()), "owned copy of '", name,
             "': expected a floating-point tensor of shape ", replaced->view.shape.str(), " (as ",
             replaced->describe(name), "), got ", dtype_name(tensor.dtype()), " ", tensor.shape().str());
    const bool inserted = owned_.emplace(name, std::make_shared<const Tensor>(std::move(tensor))).second;
    KK_CHECK(inserted, "two owned copies of '", name, "'");
  }
}

std::optional<WeightRef> OverlaySource::get(const std::string& name) const {
  auto it = owned_.find(name);
  if (it == owned_.end()) return base_->get(name);
  const std::shared_ptr<const Tensor>& tensor = it->second;
  WeightRef ref;
  ref.view = tensor->view();
  ref.owner = tensor;
  ref.mapped = false;
  ref.file = base_->describe();
  ref.stored_as = str_cat("an owned copy of '", name, "'");
  return ref;
}

std::string OverlaySource::describe() const {
  return str_cat(base_->describe(), " with ", owned_.size(), " owned ", owned_.size() == 1 ? "copy" : "copies");
}

Tensor copy_weight(const WeightSource& source, const std::string& name, DType dtype) {
  const std::optional<WeightRef> ref = source.get(name);
  KK_CHECK(ref.has_value(), source.describe(), ": no tensor '", name, "'");
  KK_CHECK(is_float(ref->view.dtype), ref->describe(name), " is ", dtype_name(ref->view.dtype),
           ", expected a floating-point dtype");
  Tensor out = Tensor::empty(ref->view.shape, dtype);
  convert_into(ref->view, out.view());
  return out;
}

}  // namespace kakusan
