// The linear cases the backend tests sweep (every weight dtype in test_cpu_ops, bf16 in bounded scratch in
// test_bf16_products): the fast backend against the reference on the same random operands.
#pragma once

#include <cstdint>
#include <utility>

#include "backend/backend.h"
#include "random_tensors.h"

namespace kakusan::testing {

struct LinearCase {
  Shape x;
  int64_t out;
  DType weight_dtype;
  bool bias;
};

// y from the fast and the reference backend: x, w and bias drawn from seed, seed + 1 and seed + 2.
inline std::pair<Tensor, Tensor> linear_fast_and_reference(const LinearCase& c, uint32_t seed) {
  const int64_t in = c.x.dim(-1);
  const Tensor x = random_tensor(c.x, seed);
  const Tensor w = random_weights({c.out, in}, in, seed + 1, c.weight_dtype);
  const Tensor b = c.bias ? random_tensor({c.out}, seed + 2) : Tensor();
  Shape ys = c.x;
  ys[ys.rank() - 1] = c.out;
  Tensor got = Tensor::empty(ys), want = Tensor::empty(ys);
  cpu_backend().linear(x, w, b, got);
  reference_backend().linear(x, w, b, want);
  return {std::move(got), std::move(want)};
}

}  // namespace kakusan::testing
