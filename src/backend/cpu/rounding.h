// Rounding activations to the precision of their products (backend.h's contract, backend/precision.h), done
// where the kernels copy their operands anyway (packing, im2col, Winograd's row split), so the f32 GEMMs that
// follow multiply the rounded operands exactly: a bf16 x bf16 product is exact in f32.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace kakusan::cpu {

// dst[i] = round_to(precision, src[i]) for bf16 and f16 (round-to-nearest-even, widened back to f32), a copy
// for F32. src and dst may be the same array. Runs on the calling thread.
void round_floats(DType precision, const float* src, float* dst, int64_t n);

}  // namespace kakusan::cpu
