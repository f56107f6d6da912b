// OverlaySource: owned tensors in place of some of another source's: the weights a LoRA merge computes
// (W + sum_i s_i * dW_i) live here, never written into a file mapping. Mapped pages are private and read
// only: MappedFile::drop_pages() would silently bring back the file's values of any page written in place,
// whereas an owned copy is untouched by page dropping. Names not replaced still come from the base source
// (zero copy where it borrows a mapping).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/weight_source.h"

namespace kakusan {

class OverlaySource : public WeightSource {
 public:
  // Each replacement must name a tensor of `base` and have its shape (and a floating-point dtype; the loader
  // converts dtypes as it does for files). Throws Error naming the tensor, expected vs got, otherwise.
  OverlaySource(std::shared_ptr<const WeightSource> base, std::vector<std::pair<std::string, Tensor>> replacements);

  std::optional<WeightRef> get(const std::string& name) const override;
  std::vector<std::string> names() const override { return base_->names(); }
  std::vector<std::shared_ptr<const MappedFile>> mapped_files() const override { return base_->mapped_files(); }
  std::string describe() const override;
  std::optional<std::string> stored_name(const std::string& name) const override { return base_->stored_name(name); }

 private:
  std::shared_ptr<const WeightSource> base_;
  // Shared so that parameters bound to a copy keep it alive after the source is gone.
  std::map<std::string, std::shared_ptr<const Tensor>> owned_;
};

// An owned copy of `name` from `source` (converted to `dtype`): where a merge starts. Throws Error if absent.
Tensor copy_weight(const WeightSource& source, const std::string& name, DType dtype);

}  // namespace kakusan
