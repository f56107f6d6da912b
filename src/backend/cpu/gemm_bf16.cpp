// bf16 GEMMs on oneDNN's matmul primitive (brgemm on vdpbf16ps where the CPU has AVX512_BF16). A primitive is
// built once per shape and kept per thread with its memory objects, so a steady-state call allocates nothing:
// it points the memory objects at the operands and this thread's scratch, and executes.
#include <oneapi/dnnl/dnnl.hpp>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backend/cpu/gemm.h"
#include "backend/cpu/scratch.h"
#include "core/cpu_features.h"

namespace kakusan::cpu {
namespace {

using dnnl::memory;

struct Shape {
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  bool operator==(const Shape&) const = default;
};

struct ShapeHash {
  size_t operator()(const Shape& s) const {
    size_t h = size_t(s.trans_a) * 2 + size_t(s.trans_b);
    for (int64_t v : {s.m, s.n, s.k, s.lda, s.ldb, s.ldc}) h = h * 1000003u ^ size_t(v);
    return h ^ std::hash<float>()(s.alpha) ^ std::hash<float>()(s.beta) * 31u;
  }
};

struct Plan {
  dnnl::matmul matmul;
  memory a, b, c, scratchpad;
  size_t scratchpad_bytes = 0;
};

// Never destroyed (as the scratch registry): pool threads' plans may outlive static objects, and oneDNN's.
const dnnl::engine& engine() {
  static const dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
}

struct ThreadPlans {
  dnnl::stream stream{engine()};
  std::unordered_map<Shape, Plan, ShapeHash> plans;
};

// Each thread's plans, reachable from a registry that is never destroyed (see engine()). A thread that exits
// leaves its plans behind: memory objects and map entries, a few KB per shape, since the JIT code is shared
// through oneDNN's primitive cache. The pool's threads live as long as the process.
ThreadPlans& thread_plans() {
  static auto* mutex = new std::mutex;
  static auto* registry = new std::vector<std::unique_ptr<ThreadPlans>>;
  thread_local ThreadPlans* mine = [] {
    std::lock_guard<std::mutex> lock(*mutex);
    registry->push_back(std::make_unique<ThreadPlans>());
    return registry->back().get();
  }();
  return *mine;
}

memory::desc matrix(int64_t rows, int64_t cols, bool trans, int64_t ld, memory::data_type type) {
  return memory::desc({rows, cols}, type, trans ? memory::dims{1, ld} : memory::dims{ld, 1});
}

Plan make_plan(const Shape& s) {
  const memory::desc a = matrix(s.m, s.k, s.trans_a, s.lda, memory::data_type::bf16);
  const memory::desc b = matrix(s.k, s.n, s.trans_b, s.ldb, memory::data_type::bf16);
  const memory::desc c = matrix(s.m, s.n, false, s.ldc, memory::data_type::f32);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (s.alpha != 1.0f) attr.set_output_scales(0, {s.alpha});  // alpha times the sum, as sgemm's alpha
  if (s.beta != 0.0f) {
    dnnl::post_ops sum;
    sum.append_sum(s.beta);
    attr.set_post_ops(sum);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine());
  Plan plan;
  plan.matmul = dnnl::matmul(pd);
  plan.a = memory(a, engine(), nullptr);
  plan.b = memory(b, engine(), nullptr);
  plan.c = memory(c, engine(), nullptr);
  plan.scratchpad = memory(pd.scratchpad_desc(), engine(), nullptr);
  plan.scratchpad_bytes = pd.scratchpad_desc().get_size();
  return plan;
}

// Beyond this many shapes a thread starts its plans afresh (image sizes change the shapes; a UNet step at one
// size needs a few dozen).
constexpr size_t kMaxPlans = 512;

}  // namespace

void bf16gemm_on_this_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c,
                             int64_t ldc) {
  ThreadPlans& mine = thread_plans();
  const Shape shape{trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta};
  auto it = mine.plans.find(shape);
  if (it == mine.plans.end()) {
    if (mine.plans.size() >= kMaxPlans) mine.plans.clear();
    it = mine.plans.emplace(shape, make_plan(shape)).first;
  }
  Plan& plan = it->second;
  plan.a.set_data_handle(const_cast<uint16_t*>(a));
  plan.b.set_data_handle(const_cast<uint16_t*>(b));
  plan.c.set_data_handle(c);
  plan.scratchpad.set_data_handle(scratch(Slot::Gemm).floats(plan.scratchpad_bytes / sizeof(float) + 1));
  const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, plan.a.get()},
                                  {DNNL_ARG_WEIGHTS, plan.b.get()},
                                  {DNNL_ARG_DST, plan.c.get()},
                                  {DNNL_ARG_SCRATCHPAD, plan.scratchpad.get()}};
  const dnnl_status_t status = dnnl_primitive_execute(plan.matmul.get(), mine.stream.get(), 4, args);
  KK_ASSERT(status == dnnl_success);
}

Bf16Gemm& bf16_gemm_setting() {
  static Bf16Gemm setting = Bf16Gemm::Auto;
  return setting;
}

bool bf16_gemm_native() {
  switch (bf16_gemm_setting()) {
    case Bf16Gemm::Native: return true;
    case Bf16Gemm::Widened: return false;
    case Bf16Gemm::Auto: break;
  }
  return cpu_has_fast_bf16_products();
}

}  // namespace kakusan::cpu
