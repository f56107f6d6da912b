// The attention shapes and strategies the backend tests sweep (f32 in test_attention, bf16/f16 in
// test_bf16_products): every strategy must give the same numbers.
#pragma once

#include <cstdint>
#include <ostream>

#include "backend/backend.h"

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

}  // namespace kakusan::testing
