// RenamedSource: another source's tensors under new names, some reshaped: how the layouts of other
// checkpoints (the original single-file Stable Diffusion files) become diffusers names, as pure data.
//
//   {"first_stage_model.*.mid.attn_1.q.weight", "*.mid_block.attentions.0.to_q.weight", 2}
//
// renames the VAE attention's query of the encoder and the decoder, and reshapes its [C, C, 1, 1] 1x1
// convolution kernel into the [C, C] matrix diffusers' linear layer holds. Each source name takes the first
// rule that matches it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/weight_source.h"

namespace kakusan {

struct WeightRename {
  // A source name, or a pattern with one '*' that matches any run of characters (possibly empty).
  std::string from;
  // The diffusers name; a '*' here is replaced by what the '*' of `from` matched.
  std::string to;
  // 0: the shape as stored. Otherwise the tensor is reshaped to this rank by dropping (or appending) trailing
  // dimensions of size 1: [C, C, 1, 1] -> [C, C] with 2, [C, C] -> [C, C, 1, 1] with 4.
  int rank = 0;
};

class RenamedSource : public WeightSource {
 public:
  // What happens to a source name no rule matches: kept as it is (the loader then reports it as unexpected
  // unless a model expects it), or left out (the other components of a single-file checkpoint).
  enum class Unmatched { Keep, Drop };

  // Throws Error naming the file and tensors when two source tensors would get the same name or a tensor
  // cannot take the rule's rank.
  RenamedSource(std::shared_ptr<const WeightSource> base, std::vector<WeightRename> rules,
                Unmatched unmatched = Unmatched::Keep);

  std::optional<WeightRef> get(const std::string& name) const override;
  std::vector<std::string> names() const override;
  std::vector<std::shared_ptr<const MappedFile>> mapped_files() const override { return base_->mapped_files(); }
  std::string describe() const override { return base_->describe(); }
  // The source name of `name`, or the one a rule would give it (the rules read backwards).
  std::optional<std::string> stored_name(const std::string& name) const override;

 private:
  struct Target {
    std::string source_name;
    int rank;
  };
  std::shared_ptr<const WeightSource> base_;
  std::vector<WeightRename> rules_;
  std::map<std::string, Target> index_;  // diffusers name -> where it comes from
};

// The name `rule` gives `name`, or nullopt when the rule does not match it.
std::optional<std::string> apply_rename(const WeightRename& rule, const std::string& name);

}  // namespace kakusan
