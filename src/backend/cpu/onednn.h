// What the CPU kernels share around oneDNN: one engine, oneDNN kept on the calling thread (our pool supplies the
// parallelism), and per-thread primitives built once per shape, so a steady-state call allocates nothing.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backend/cpu/scratch.h"
#include "core/error.h"

namespace kakusan::cpu {

// Never destroyed: pool threads' plans may outlive static objects, and oneDNN's.
const dnnl::engine& onednn_engine();

// oneDNN's OpenMP team is kept at one thread on the calling thread (gemm.cpp).
void keep_onednn_on_this_thread();

// A thread's primitives by shape (Plan: the primitive and its memory objects, which a call points at its
// operands), with the thread's stream. Beyond kMaxPlans shapes (image sizes change them; a UNet step at one
// size needs a few dozen) a thread starts afresh.
template <typename Key, typename Plan, typename Hash>
class ThreadPlans {
 public:
  static constexpr size_t kMaxPlans = 512;

  template <typename Make>
  Plan& get(const Key& key, const Make& make) {
    auto it = plans_.find(key);
    if (it == plans_.end()) {
      if (plans_.size() >= kMaxPlans) plans_.clear();
      it = plans_.emplace(key, make(key)).first;
    }
    return it->second;
  }
  dnnl::stream& stream() { return stream_; }

 private:
  dnnl::stream stream_{onednn_engine()};
  std::unordered_map<Key, Plan, Hash> plans_;
};

// This thread's T, reachable from a registry that is never destroyed (see onednn_engine()). A thread that exits
// leaves its T behind (a few KB per shape: the JIT code is shared through oneDNN's primitive cache); the
// pool's threads live as long as the process.
template <typename T>
T& this_thread_plans() {
  static auto* mutex = new std::mutex;
  static auto* registry = new std::vector<std::unique_ptr<T>>;
  thread_local T* mine = [] {
    std::lock_guard<std::mutex> lock(*mutex);
    registry->push_back(std::make_unique<T>());
    return registry->back().get();
  }();
  return *mine;
}

// A primitive with source, weights, destination and maybe a bias (matmul, convolution) and memory objects for
// them, which a call points at its operands; the scratchpad is the calling thread's scratch(Slot::Gemm).
struct Plan {
  dnnl::primitive primitive;
  dnnl::memory src, weights, bias, dst, scratchpad;
  size_t scratchpad_bytes = 0;

  template <typename Primitive, typename PrimitiveDesc>
  static Plan of(const PrimitiveDesc& pd) {
    const dnnl::engine& engine = onednn_engine();
    Plan plan;
    plan.primitive = Primitive(pd);
    plan.src = dnnl::memory(pd.src_desc(), engine, nullptr);
    plan.weights = dnnl::memory(pd.weights_desc(), engine, nullptr);
    plan.dst = dnnl::memory(pd.dst_desc(), engine, nullptr);
    if (!pd.bias_desc().is_zero()) plan.bias = dnnl::memory(pd.bias_desc(), engine, nullptr);
    plan.scratchpad = dnnl::memory(pd.scratchpad_desc(), engine, nullptr);
    plan.scratchpad_bytes = pd.scratchpad_desc().get_size();
    return plan;
  }

  // Through the C API: no argument map is built per call.
  // `bias_data` exactly when the plan was made with a bias.
  void execute(dnnl::stream& stream, const void* src_data, const void* weights_data, void* dst_data,
               const float* bias_data = nullptr) {
    KK_ASSERT((bias_data != nullptr) == bool(bias));
    src.set_data_handle(const_cast<void*>(src_data));
    weights.set_data_handle(const_cast<void*>(weights_data));
    dst.set_data_handle(dst_data);
    scratchpad.set_data_handle(scratch(Slot::Gemm).floats(scratchpad_bytes / sizeof(float) + 1));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, src.get()},
                              {DNNL_ARG_WEIGHTS, weights.get()},
                              {DNNL_ARG_DST, dst.get()},
                              {DNNL_ARG_SCRATCHPAD, scratchpad.get()},
                              {DNNL_ARG_BIAS, nullptr}};
    if (bias) {
      bias.set_data_handle(const_cast<float*>(bias_data));
      args[4].memory = bias.get();
    }
    const dnnl_status_t status = dnnl_primitive_execute(primitive.get(), stream.get(), bias ? 5 : 4, args);
    KK_ASSERT(status == dnnl_success);
  }
};

}  // namespace kakusan::cpu
