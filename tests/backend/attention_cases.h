// The attention shapes and strategies the backend tests sweep (f32 in test_attention, bf16/f16 in
// test_bf16_products): every strategy must give the same numbers.
#pragma once

#include <cmath>
#include <cstdint>
#include <ostream>

#include "backend/backend.h"
#include "random_tensors.h"

namespace kakusan::testing {

struct AttentionCase {
  int64_t batch, q_len, kv_len;
  int heads;
  int64_t head_dim, value_dim;
  bool causal;
};

inline std::ostream& operator<<(std::ostream& out, const AttentionCase& c) {
  return out << "b" << c.batch << " tq" << c.q_len << " tk" << c.kv_len << " h" << c.heads << " d" << c.head_dim
             << " dv" << c.value_dim << (c.causal ? " causal" : "");
}

// The case's q, k and v (random, seeded: scores of a few units, so the softmax is neither flat nor one-hot).
struct AttentionInputs {
  Tensor q, k, v;
};
inline AttentionInputs random_attention_inputs(const AttentionCase& c) {
  const int64_t qw = c.heads * c.head_dim, vw = c.heads * c.value_dim;
  return {random_tensor({c.batch, c.q_len, qw}, 31, 2.0f), random_tensor({c.batch, c.kv_len, qw}, 32, 2.0f),
          random_tensor({c.batch, c.kv_len, vw}, 33)};
}

// diffusers' scale (head_dim^-0.5), the case's heads and mask; f32 precision, the default strategy.
inline AttentionParams attention_params_for(const AttentionCase& c) {
  AttentionParams p;
  p.heads = c.heads;
  p.scale = 1.0f / std::sqrt(float(c.head_dim));
  p.causal = c.causal;
  return p;
}

struct Strategy {
  AttentionStrategy strategy;
  int slice_size;
  const char* name;
};
inline constexpr Strategy kStrategies[] = {{AttentionStrategy::Full, 0, "full"},
                                           {AttentionStrategy::Sliced, 0, "sliced(1)"},
                                           {AttentionStrategy::Sliced, 3, "sliced(3)"},
                                           {AttentionStrategy::Flash, 0, "flash"},
                                           {AttentionStrategy::Auto, 0, "auto"}};

// The cpu backend's attention with p under each of kStrategies, into an output of `shape` first filled with
// garbage that must be overwritten: check(strategy, output).
template <typename Check>
void for_each_cpu_strategy(const TensorView& q, const TensorView& k, const TensorView& v, AttentionParams p,
                           const Shape& shape, Check&& check) {
  for (const Strategy& s : kStrategies) {
    p.strategy = s.strategy;
    p.slice_size = s.slice_size;
    Tensor got = Tensor::full(shape, 1e30f);
    cpu_backend().attention(q, k, v, p, got);
    check(s, got);
  }
}

}  // namespace kakusan::testing
