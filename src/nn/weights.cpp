#include "nn/weights.h"

#include <algorithm>
#include <set>

namespace kakusan {

void WeightLoader::tensor(const std::string& name, Tensor& param, const Shape& shape) {
  std::optional<WeightRef> found = source_.get(name);
  auto note_first = [&](std::string problem) {
    if (!first_problem_name_.empty()) return;
    first_problem_name_ = name;
    first_problem_ = std::move(problem);
    if (found && !found->stored_as.empty()) first_stored_as_ = found->stored_as;
  };
  if (!found) {
    missing_.push_back(name + " " + shape.str());
    note_first(str_cat("is missing (the config implies ", shape.str(), ")"));
    return;
  }
  used_.push_back(name);
  const TensorView& view = found->view;
  KK_ASSERT(view.is_contiguous());  // every source yields dense views (splits are row ranges)
  // Where the source found it, when that is not simply the file's tensor of this name.
  const std::string stored = found->stored_as.empty() ? "" : str_cat(" (", found->stored_as, ")");
  if (!(view.shape == shape)) {
    mismatched_.push_back(str_cat(name, ": expected ", shape.str(), ", file has ", view.shape.str(), stored));
    note_first(str_cat("has shape ", view.shape.str(), " but the config implies ", shape.str()));
    return;
  }
  if (!is_float(view.dtype)) {
    mismatched_.push_back(
        str_cat(name, ": expected a floating-point dtype, file has ", dtype_name(view.dtype), stored));
    note_first(str_cat("is ", dtype_name(view.dtype), ", not a floating-point tensor"));
    return;
  }
  const DType want = shape.rank() >= 2 ? weight_dtype_ : DType::F32;
  if (view.dtype == want) {
    param = Tensor::borrow(view, std::move(found->owner));
    (found->mapped ? mapped_bytes_ : owned_bytes_) += int64_t(param.nbytes());
  } else {
    // Converted straight from the file's bytes, which the weight sources hand out aligned for their dtype (a
    // safetensors file's misaligned tensor is copied at open: HostileFiles.MisalignedTensorsAreReadableAndAligned):
    // an fp16 UNet loaded in bf16 in 1.2 s where a copy and then a conversion took 2.0 s (bench's load s).
    KK_ASSERT(reinterpret_cast<uintptr_t>(view.data) % dtype_size(view.dtype) == 0);
    param = Tensor::empty(view.shape, want);
    convert_into(view, param.view());
    owned_bytes_ += int64_t(param.nbytes());
    // The file's copy of this tensor is not read again: release its pages now, so converting a model (an
    // fp16 file run in bf16, an fp32 file in fp16) never holds the file and the converted copy at once.
    if (found->mapped) {
      if (files_.empty()) files_ = source_.mapped_files();
      for (const auto& file : files_) file->drop_range(view.data, view.nbytes());
    }
  }
}

void WeightLoader::finish(const std::string& component) const {
  const std::set<std::string> used(used_.begin(), used_.end());
  std::vector<std::string> unexpected;
  for (const std::string& name : source_.names())
    if (!used.count(name) && !WeightSource::is_ignorable(name)) unexpected.push_back(name);
  if (missing_.empty() && mismatched_.empty() && unexpected.empty()) return;
  // A renamed layout: the first problem on one line, under both names.
  const std::string first = first_problem_name_.empty() ? unexpected.front() : first_problem_name_;
  if (const std::optional<std::string> stored = source_.stored_name(first)) {
    const std::string where = first_stored_as_.empty() ? str_cat("the file's '", *stored, "'") : first_stored_as_;
    fail(component, " (", source_.describe(), "): tensor '", first, "' (", where, ") ",
         first_problem_name_.empty() ? "is not a tensor of the model (a checkpoint of another architecture?)"
                                     : first_problem_);
  }

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
