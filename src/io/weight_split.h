// SplitSource: fused tensors of another source served as their parts, zero copy. Original checkpoints fuse
// what diffusers keeps apart, e.g. OpenCLIP's attention in_proj_weight [3C, C] holds the query, key and value
// projections as rows [0, C), [C, 2C), [2C, 3C). Splits are along the first dimension, so every part is a
// contiguous run of the fused tensor's memory (a view into the same mapping).
#pragma once

#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "io/weight_source.h"

namespace kakusan {

struct WeightSplit {
  struct Part {
    std::string name;  // the part's (diffusers) name
    int64_t begin;     // rows [begin, end) of the fused tensor's first dimension
    int64_t end;
  };
  std::string fused;  // the fused tensor's name in the base source
  std::vector<Part> parts;

  // `names.size()` consecutive parts of `rows` rows each: rows [i * rows, (i + 1) * rows) become names[i].
  static WeightSplit even(std::string fused, const std::vector<std::string>& names, int64_t rows);
};

class SplitSource : public WeightSource {
 public:
  // The fused tensors are no longer served under their own names. Throws Error naming the file and tensor
  // when a fused tensor is absent or a scalar, a part's rows lie outside it, or a part's name is taken.
  SplitSource(std::shared_ptr<const WeightSource> base, std::vector<WeightSplit> splits);

  std::optional<WeightRef> get(const std::string& name) const override;
  std::vector<std::string> names() const override;
  std::vector<std::shared_ptr<const MappedFile>> mapped_files() const override { return base_->mapped_files(); }
  std::string describe() const override { return base_->describe(); }
  std::optional<std::string> stored_name(const std::string& name) const override;

 private:
  struct Part {
    std::string fused;
    int64_t begin, end;
  };
  std::shared_ptr<const WeightSource> base_;
  std::map<std::string, Part> parts_;    // part name -> its rows of a fused tensor
  std::set<std::string> fused_;          // the fused names (hidden)
};

}  // namespace kakusan
