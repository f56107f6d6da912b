#include "pipeline/prepare_image.h"

#include <cstdint>

#include "core/error.h"
#include "io/image_resize.h"

namespace kakusan {

uint8_t luma(const uint8_t* rgb) {
  return uint8_t((uint32_t(rgb[0]) * 19595u + uint32_t(rgb[1]) * 38470u + uint32_t(rgb[2]) * 7471u + 0x8000u) >> 16);
}

namespace {

// Calls `write(i, y, x, pixel)` for every pixel of every image after resizing to `size`.
template <typename Write>
void for_each_resized_pixel(const std::vector<Image>& images, ImageSize size, Write&& write) {
  for (size_t i = 0; i < images.size(); ++i) {
    const Image resized = resize_lanczos(images[i], size.width, size.height);
    for (int y = 0; y < size.height; ++y)
      for (int x = 0; x < size.width; ++x)
        write(int64_t(i), y, x, &resized.rgb[(size_t(y) * size_t(size.width) + size_t(x)) * 3]);
  }
}

}  // namespace

ImageSize processed_size(const Image& image, int height, int width, int vae_scale_factor) {
  ImageSize size{height ? height : image.height, width ? width : image.width};
  size.height -= size.height % vae_scale_factor;
  size.width -= size.width % vae_scale_factor;
  KK_CHECK(size.height > 0 && size.width > 0, "the input image is ", image.width, "x", image.height,
           ": images must be at least ", vae_scale_factor, " pixels on each side (they are cut to multiples of ",
           vae_scale_factor, ")");
  return size;
}

Tensor preprocess_images(const std::vector<Image>& images, ImageSize size) {
  Tensor out = Tensor::empty({int64_t(images.size()), 3, size.height, size.width});
  const int64_t plane = int64_t(size.height) * size.width;
  float* p = out.f32();
  for_each_resized_pixel(images, size, [&](int64_t i, int y, int x, const uint8_t* rgb) {
    for (int ch = 0; ch < 3; ++ch) {
      const float v = float(rgb[ch]) / 255.0f;  // pil_to_numpy, then normalize: 2x - 1
      p[(i * 3 + ch) * plane + int64_t(y) * size.width + x] = 2.0f * v - 1.0f;
    }
  });
  return out;
}

Tensor preprocess_masks(const std::vector<Image>& masks, ImageSize size) {
  Tensor out = Tensor::empty({int64_t(masks.size()), 1, size.height, size.width});
  const int64_t plane = int64_t(size.height) * size.width;
  float* p = out.f32();
  for_each_resized_pixel(masks, size, [&](int64_t i, int y, int x, const uint8_t* rgb) {
    p[i * plane + int64_t(y) * size.width + x] = float(luma(rgb)) / 255.0f < 0.5f ? 0.0f : 1.0f;
  });
  return out;
}

}  // namespace kakusan
