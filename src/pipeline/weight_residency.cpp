#include "pipeline/weight_residency.h"

namespace kakusan {

void ResidentWeights::add(const WeightSource& source) {
  for (std::shared_ptr<const MappedFile>& file : source.mapped_files()) mappings_.push_back(std::move(file));
}

void ResidentWeights::drop_pages() const {
  for (const std::shared_ptr<const MappedFile>& file : mappings_) file->drop_pages();
}

bool ResidentWeights::contains(const void* p) const {
  const auto* byte = static_cast<const std::byte*>(p);
  for (const std::shared_ptr<const MappedFile>& file : mappings_)
    if (byte >= file->data() && byte < file->data() + file->size()) return true;
  return false;
}

void ByteCounter::tensor(const std::string&, Tensor& param, const Shape&) {
  bytes += int64_t(param.nbytes());
  if (mapped_ != nullptr && mapped_->contains(param.data())) mapped_bytes += int64_t(param.nbytes());
}

void end_phase(Backend& backend, const ResidentWeights& weights, int64_t& scratch_bytes) {
  scratch_bytes = int64_t(backend.scratch_bytes());
  backend.release_scratch();
  weights.drop_pages();
}

}  // namespace kakusan
