#include "io/weight_split.h"

#include <algorithm>

#include "core/error.h"

namespace kakusan {

WeightSplit WeightSplit::even(std::string fused, const std::vector<std::string>& names, int64_t rows) {
  WeightSplit split{std::move(fused), {}};
  for (size_t i = 0; i < names.size(); ++i) split.parts.push_back({names[i], int64_t(i) * rows, int64_t(i + 1) * rows});
  return split;
}

SplitSource::SplitSource(std::shared_ptr<const WeightSource> base, std::vector<WeightSplit> splits)
    : base_(std::move(base)) {
  for (const WeightSplit& split : splits) {
    const std::optional<WeightRef> fused = base_->get(split.fused);
    KK_CHECK(fused.has_value(), base_->describe(), ": no tensor '", split.fused, "' to split into ",
             split.parts.empty() ? std::string("parts") : str_cat("'", split.parts[0].name, "', ..."));
    KK_CHECK(fused->view.rank() >= 1, fused->describe(split.fused), " is a scalar; it cannot be split into rows");
    KK_CHECK(fused_.insert(split.fused).second, "tensor '", split.fused, "' is split twice");
    const int64_t rows = fused->view.shape[0];
    for (const WeightSplit::Part& part : split.parts) {
      KK_CHECK(0 <= part.begin && part.begin < part.end && part.end <= rows, fused->describe(split.fused), " ",
               fused->view.shape.str(), " has ", rows, " rows; its part '", part.name, "' asks for rows [",
               part.begin, ", ", part.end, ")");
      KK_CHECK(parts_.emplace(part.name, Part{split.fused, part.begin, part.end}).second, "split of '",
               split.fused, "': the part name '", part.name, "' is used twice");
    }
  }
  for (const auto& [name, part] : parts_)
    KK_CHECK(fused_.count(name) || !base_->get(name), base_->describe(), ": split part '", name,
             "' would hide a tensor of the same name (from '", part.fused, "')");
}

std::optional<WeightRef> SplitSource::get(const std::string& name) const {
  if (fused_.count(name)) return std::nullopt;
  auto it = parts_.find(name);
  if (it == parts_.end()) return base_->get(name);
  const Part& part = it->second;
  std::optional<WeightRef> ref = base_->get(part.fused);
  KK_ASSERT(ref.has_value());  // checked when the split was built
  ref->view = ref->view.slice0(part.begin, part.end);
  ref->stored_as = str_cat("rows [", part.begin, ", ", part.end, ") of ",
                           ref->stored_as.empty() ? str_cat("tensor '", part.fused, "'") : ref->stored_as);
  return ref;
}

std::optional<std::string> SplitSource::stored_name(const std::string& name) const {
  auto it = parts_.find(name);
  if (it == parts_.end()) return base_->stored_name(name);
  return base_->stored_name(it->second.fused).value_or(it->second.fused);
}

std::vector<std::string> SplitSource::names() const {
  std::vector<std::string> out;
  for (std::string& name : base_->names())
    if (!fused_.count(name)) out.push_back(std::move(name));
  for (const auto& [name, part] : parts_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace kakusan
