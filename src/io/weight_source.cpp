#include "io/weight_source.h"

#include "core/error.h"

namespace kakusan {

std::string WeightRef::describe(const std::string& name) const {
  if (stored_as.empty()) return str_cat(file, ": tensor '", name, "'");
  return str_cat(file, ": ", stored_as);
}

bool WeightSource::is_ignorable(const std::string& name) { return name == "text_model.embeddings.position_ids"; }

}  // namespace kakusan
