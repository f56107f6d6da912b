// bf16 GEMMs on oneDNN's matmul primitive (brgemm on vdpbf16ps where the CPU has AVX512_BF16), built once per
// shape and kept per thread (onednn.h).
#include "backend/cpu/gemm.h"
#include "backend/cpu/onednn.h"
#include "backend/cpu/scratch.h"
#include "core/cpu_features.h"

namespace kakusan::cpu {
namespace {

using dnnl::memory;

struct Shape {
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  bool bias;
  bool operator==(const Shape&) const = default;
};

struct ShapeHash {
  size_t operator()(const Shape& s) const {
    size_t h = size_t(s.trans_a) * 4 + size_t(s.trans_b) * 2 + size_t(s.bias);
    for (int64_t v : {s.m, s.n, s.k, s.lda, s.ldb, s.ldc}) h = h * 1000003u ^ size_t(v);
    return h ^ std::hash<float>()(s.alpha) ^ std::hash<float>()(s.beta) * 31u;
  }
};

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
  const memory::desc bias = matrix(1, s.n, false, s.n, memory::data_type::f32);
  const dnnl::matmul::desc desc = s.bias ? dnnl::matmul::desc(a, b, bias, c) : dnnl::matmul::desc(a, b, c);
  return Plan::of<dnnl::matmul>(dnnl::matmul::primitive_desc(desc, attr, onednn_engine()));
}

}  // namespace

void bf16gemm_on_this_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c,
                             int64_t ldc, const float* bias) {
  auto& mine = this_thread_plans<ThreadPlans<Shape, Plan, ShapeHash>>();
  mine.get({trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, bias != nullptr}, make_plan)
      .execute(mine.stream(), a, b, c, bias);
}

const dnnl::engine& onednn_engine() {
  static const dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
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
