// Page residency of a model component's weights. Weights borrowed from a mapping cost RSS only for the pages
// touched; dropping those pages after the component's phase (the text encoder after encoding, the UNet before
// decoding, the VAE after it) keeps one component resident at a time, as diffusers' enable_model_cpu_offload
// does, while the pipeline stays loaded: the next use faults the pages back in from the page cache, once per
// generate().
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/mapped_file.h"
#include "io/weight_store.h"
#include "nn/weights.h"

namespace kakusan {

class ResidentWeights {
 public:
  // Adds the mapped files of `source` (they stay mapped as long as this object holds them).
  void add(const WeightSource& source);
  void drop_pages() const;
  // Whether `p` points into one of the mappings (a borrowed weight, whose pages drop_pages() releases).
  bool contains(const void* p) const;

 private:
  std::vector<std::shared_ptr<const MappedFile>> mappings_;
};

// Bytes of a module's parameters as held (f16 matrices count 2 bytes an element), and of those the bytes
// borrowed from `mapped` (pages that drop_pages() releases; converted or realigned copies are owned).
class ByteCounter : public WeightVisitor {
 public:
  explicit ByteCounter(const ResidentWeights* mapped = nullptr) : mapped_(mapped) {}
  void tensor(const std::string&, Tensor& param, const Shape&) override;
  int64_t bytes = 0, mapped_bytes = 0;

 private:
  const ResidentWeights* mapped_;
};

template <typename Model>
int64_t weight_bytes(Model& model) {
  ByteCounter counter;
  model.visit(counter);
  return counter.bytes;
}

// Bytes of a block model (the UNet) held at once when its blocks' weights are released block by block: all the
// weights outside the blocks, plus the largest block's releasable bytes. With `mapped` (stream_unet_weights on
// the host) a block releases only its mapped pages — owned copies stay, and so do mapped weights outside the
// blocks once touched (time embedding, conv_in/out: small); without (sequential offload on a device) a block's
// device copy releases all of its bytes.
template <typename BlockModel>
int64_t block_by_block_bytes(BlockModel& model, const ResidentWeights* mapped) {
  ByteCounter whole(mapped);
  model.visit(whole);
  int64_t largest_block = 0, in_blocks = 0;
  for (size_t i = 0; i < model.num_blocks(); ++i) {
    ByteCounter block(mapped);
    model.visit_block(i, block);
    const int64_t released = mapped != nullptr ? block.mapped_bytes : block.bytes;
    largest_block = std::max(largest_block, released);
    in_blocks += released;
  }
  return (whole.bytes - in_blocks) + largest_block;
}

// After a phase: records what the backend's kernel scratch grew to, gives it back (so the UNet's buffers are
// not held through the VAE decode), and drops the component's pages.
void end_phase(Backend& backend, const ResidentWeights& weights, int64_t& scratch_bytes);

}  // namespace kakusan
