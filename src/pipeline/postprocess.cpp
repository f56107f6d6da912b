#include "pipeline/postprocess.h"

#include <algorithm>

namespace kakusan {

Tensor denormalize_to_nhwc(const TensorView& decoded) {
  KK_ASSERT(decoded.rank() == 4 && decoded.dim(1) == 3 && decoded.dtype == DType::F32);
  const int64_t batch = decoded.dim(0), height = decoded.dim(2), width = decoded.dim(3);
  Tensor out = Tensor::empty({batch, height, width, 3});
  float* y = out.f32();
  const float* x = decoded.f32();
  const Shape& s = decoded.strides;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < height; ++h)
      for (int64_t w = 0; w < width; ++w)
        for (int64_t c = 0; c < 3; ++c) {
          const float value = x[b * s[0] + c * s[1] + h * s[2] + w * s[3]] / 2.0f + 0.5f;
          *y++ = std::clamp(value, 0.0f, 1.0f);
        }
  return out;
}

}  // namespace kakusan
