#include "io/weight_rename.h"

#include <algorithm>

#include "core/error.h"

namespace kakusan {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// `shape` with trailing size-1 dimensions dropped or appended to reach `rank`; nullopt when a dimension to
// drop is not 1.
std::optional<Shape> to_rank(const Shape& shape, int rank) {
  for (int i = rank; i < shape.rank(); ++i)
    if (shape[i] != 1) return std::nullopt;
  Shape out(shape.begin(), shape.begin() + std::min(rank, shape.rank()));
  while (out.rank() < rank) out.push_back(1);
  return out;
}

}  // namespace

std::optional<std::string> apply_rename(const WeightRename& rule, const std::string& name) {
  const size_t star = rule.from.find('*');
  if (star == std::string::npos) {
    if (name != rule.from) return std::nullopt;
    return rule.to;
  }
  const std::string prefix = rule.from.substr(0, star), suffix = rule.from.substr(star + 1);
  if (name.size() < prefix.size() + suffix.size() || !starts_with(name, prefix) || !ends_with(name, suffix))
    return std::nullopt;
  const std::string matched = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  std::string out = rule.to;
  const size_t to_star = out.find('*');
  if (to_star != std::string::npos) out.replace(to_star, 1, matched);
  return out;
}

RenamedSource::RenamedSource(std::shared_ptr<const WeightSource> base, std::vector<WeightRename> rules,
                             Unmatched unmatched)
    : base_(std::move(base)), rules_(rules) {
  for (const WeightRename& rule : rules) {
    KK_CHECK(std::count(rule.from.begin(), rule.from.end(), '*') <= 1 &&
                 std::count(rule.to.begin(), rule.to.end(), '*') <= std::count(rule.from.begin(), rule.from.end(), '*'),
             "weight rename '", rule.from, "' -> '", rule.to, "': at most one '*', and only in 'to' when in 'from'");
    KK_CHECK(rule.rank >= 0 && rule.rank <= Shape::kMaxRank, "weight rename '", rule.from, "': rank ", rule.rank,
             " is not between 0 and ", Shape::kMaxRank);
  }
  for (const std::string& source_name : base_->names()) {
    std::optional<std::string> renamed;
    int rank = 0;
    for (const WeightRename& rule : rules) {
      if ((renamed = apply_rename(rule, source_name))) {
        rank = rule.rank;
        break;
      }
    }
    if (!renamed) {
      if (unmatched == Unmatched::Drop) continue;
      renamed = source_name;
    }
    if (rank != 0) {
      const WeightRef ref = *base_->get(source_name);
      KK_CHECK(to_rank(ref.view.shape, rank), ref.describe(source_name), " is ", ref.view.shape.str(),
               ", which cannot become rank ", rank, " for '", *renamed,
               "' (only trailing dimensions of size 1 are dropped)");
    }
    auto [it, inserted] = index_.emplace(*renamed, Target{source_name, rank});
    KK_CHECK(inserted, base_->describe(), ": tensors '", it->second.source_name, "' and '", source_name,
             "' are both renamed to '", *renamed, "'");
  }
}

std::optional<WeightRef> RenamedSource::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  const Target& target = it->second;
  std::optional<WeightRef> ref = base_->get(target.source_name);
  KK_ASSERT(ref.has_value());  // the base answered this name when the index was built
  const std::string stored = ref->stored_as.empty() ? str_cat("tensor '", target.source_name, "'") : ref->stored_as;
  if (target.rank != 0 && target.rank != ref->view.rank()) {
    const Shape stored_shape = ref->view.shape;
    ref->view = ref->view.reshape(*to_rank(stored_shape, target.rank));
    ref->stored_as = str_cat(stored, " reshaped from ", stored_shape.str());
  } else if (target.source_name != name) {
    ref->stored_as = stored;
  }
  return ref;
}

std::optional<std::string> RenamedSource::stored_name(const std::string& name) const {
  if (auto it = index_.find(name); it != index_.end())
    return base_->stored_name(it->second.source_name).value_or(it->second.source_name);
  for (const WeightRename& rule : rules_) {
    const bool from_star = rule.from.find('*') != std::string::npos, to_star = rule.to.find('*') != std::string::npos;
    if (from_star != to_star) continue;  // many names to one: no way back
    if (std::optional<std::string> stored = apply_rename({rule.to, rule.from, 0}, name)) return stored;
  }
  return std::nullopt;
}

std::vector<std::string> RenamedSource::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, target] : index_) out.push_back(name);
  return out;
}

}  // namespace kakusan
