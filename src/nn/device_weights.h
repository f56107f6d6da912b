// DeviceWeights: a device copy of a weight set, held for a while — the mechanism of the offload levers
// (diffusers' enable_model_cpu_offload and enable_sequential_cpu_offload).
//
// add() swaps every parameter a weight walk visits for a copy in the backend's memory and keeps the host tensor
// it replaced (a mapped file's view or an owned copy, e.g. a LoRA-merged weight); release() frees the copies
// and puts the host tensors back, so the model is exactly as before. The weights stay in host memory between
// uses, as on the CPU, and the same walk (visit / visit_block) says what one use needs: a whole component for
// a phase, or one UNet block. On a host backend it does nothing (host weights already are its memory).
//
// While a copy is held, the model must not move and its parameters must not be rebound (a LoRA change happens
// between phases, on the host tensors). Freeing a copy is stream-ordered on a device backend (CUDA frees
// into its pool after the ops already enqueued), so release() may follow the last op that read it at once.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "nn/weights.h"

namespace kakusan {

class DeviceWeights {
 public:
  explicit DeviceWeights(Backend& backend) : backend_(&backend) {}
  ~DeviceWeights() {
    try {
      release();
    } catch (...) {  // a failed download while tearing down: that parameter is left empty
    }
  }
  DeviceWeights(DeviceWeights&& other) noexcept
      : backend_(other.backend_), held_(std::exchange(other.held_, {})), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceWeights& operator=(DeviceWeights&&) = delete;
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;

  // Uploads the parameters `walk` (a callable taking WeightVisitor&) visits, except those in `except` and
  // those already in the backend's memory.
  template <typename Walk>
  void add(Walk&& walk, const std::unordered_set<const Tensor*>& except = {}) {
    if (backend_->device().is_host()) return;
    Swapper swapper(*this, except);
    walk(static_cast<WeightVisitor&>(swapper));
  }
  template <typename Module>
  void add_module(Module& module) {
    add([&](WeightVisitor& v) { module.visit(v); });
  }

  // Frees the host tensors `owned` picks (copies this process made: converted, realigned or merged weights, as
  // opposed to views of a mapped file, whose pages cost nothing once dropped), so that a weight kept on the
  // device for long (offload none) is not held twice; release() downloads those back.
  void drop_host_copies(const std::function<bool(const Tensor&)>& owned);

  // Frees the device copies and gives the model its host tensors back (in reverse order of upload; a dropped
  // one downloaded from its device copy, bit for bit).
  void release();

  // Bytes of the device copies held now.
  int64_t bytes() const { return bytes_; }

 private:
  class Swapper final : public WeightVisitor {
   public:
    Swapper(DeviceWeights& owner, const std::unordered_set<const Tensor*>& except) : owner_(owner), except_(except) {}
    void tensor(const std::string& name, Tensor& param, const Shape& shape) override;

   private:
    DeviceWeights& owner_;
    const std::unordered_set<const Tensor*>& except_;
  };
  struct Held {
    Tensor* param;  // the model's parameter, now the device copy
    Tensor host;    // what it was (empty once dropped)
    bool dropped = false;
  };

  Backend* backend_;
  std::vector<Held> held_;
  int64_t bytes_ = 0;
};

// The parameters a walk visits, by address: what DeviceWeights::add leaves out when another copy holds them.
class ParameterSet final : public WeightVisitor {
 public:
  void tensor(const std::string&, Tensor& param, const Shape&) override { params.insert(&param); }
  std::unordered_set<const Tensor*> params;
};

}  // namespace kakusan

namespace kakusan {

// Sequential offload of a block model (the UNet: num_blocks / visit_block, and Context::after_block between its
// blocks): the weights outside the blocks (time embedding, conv_in, conv_out: small) stay on the device for the
// whole phase; each block's are uploaded just before it runs and freed right after it, so at most one block's
// weights are on the device at a time. begin_pass() before every forward pass, after_block() from
// Context::after_block. The blocks' order is the forward's (visit_block's contract).
template <typename BlockModel>
class BlockByBlockWeights {
 public:
  BlockByBlockWeights(Backend& backend, BlockModel& model) : model_(model), rest_(backend), block_(backend) {
    ParameterSet in_blocks;
    for (size_t i = 0; i < model.num_blocks(); ++i) model.visit_block(i, in_blocks);
    rest_.add([&](WeightVisitor& v) { model.visit(v); }, in_blocks.params);
  }

  void begin_pass() {
    block_.release();
    next_ = 0;
    upload_next();
  }
  void after_block() {
    block_.release();
    upload_next();
  }

  // Device bytes held now: the weights outside the blocks plus the current block's.
  int64_t bytes() const { return rest_.bytes() + block_.bytes(); }

 private:
  void upload_next() {
    if (next_ >= model_.num_blocks()) return;
    const size_t i = next_++;
    block_.add([&](WeightVisitor& v) { model_.visit_block(i, v); });
  }

  BlockModel& model_;
  DeviceWeights rest_, block_;
  size_t next_ = 0;
};

}  // namespace kakusan
