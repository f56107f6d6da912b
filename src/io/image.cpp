#include "io/image.h"

#include <cmath>
#include <cstring>

namespace kakusan {

uint8_t to_u8(float x) {
  if (!(x > 0.0f)) return 0;  // also NaN
  if (x >= 1.0f) return 255;
  // Product in float32 as numpy does for a float32 array; nearbyint rounds half to even in the default mode.
  return uint8_t(std::nearbyint(x * 255.0f));
}

std::vector<Image> images_from_nhwc(const TensorView& nhwc) {
  KK_CHECK(nhwc.dtype == DType::F32 && nhwc.rank() == 4 && nhwc.dim(3) == 3,
           "image tensor must be float32 [batch, height, width, 3], got ", dtype_name(nhwc.dtype), " ",
           nhwc.shape.str());
  KK_CHECK(nhwc.dim(1) > 0 && nhwc.dim(2) > 0 && nhwc.dim(1) <= 1 << 16 && nhwc.dim(2) <= 1 << 16,
           "image size ", nhwc.dim(2), "x", nhwc.dim(1), " is out of range");
  const Tensor dense = nhwc.is_contiguous() ? Tensor() : Tensor::copy_of(nhwc);
  const float* data = dense.defined() ? dense.f32() : nhwc.f32();
  std::vector<Image> images;
  const size_t per_image = size_t(nhwc.dim(1) * nhwc.dim(2) * 3);
  for (int64_t b = 0; b < nhwc.dim(0); ++b) {
    Image image;
    image.height = int(nhwc.dim(1));
    image.width = int(nhwc.dim(2));
    image.rgb.resize(per_image);
    const float* src = data + size_t(b) * per_image;
    for (size_t i = 0; i < per_image; ++i) image.rgb[i] = to_u8(src[i]);
    images.push_back(std::move(image));
  }
  return images;
}

Image make_image_grid(const std::vector<Image>& images, int rows, int cols) {
  KK_CHECK(rows > 0 && cols > 0 && size_t(rows) * size_t(cols) == images.size(), "image grid of ", rows, "x",
           cols, " needs ", int64_t(rows) * cols, " images, got ", images.size());
  const int w = images[0].width, h = images[0].height;
  for (size_t i = 0; i < images.size(); ++i) {
    KK_CHECK(images[i].width == w && images[i].height == h, "image grid: image ", i, " is ", images[i].width, "x",
             images[i].height, ", expected ", w, "x", h, " like the first");
    KK_CHECK(images[i].rgb.size() == size_t(w) * size_t(h) * 3, "image grid: image ", i, " has ",
             images[i].rgb.size(), " bytes, expected ", size_t(w) * size_t(h) * 3);
  }
  Image grid;
  grid.width = cols * w;
  grid.height = rows * h;
  grid.rgb.assign(size_t(grid.width) * size_t(grid.height) * 3, 0);
  const size_t row_bytes = size_t(w) * 3, grid_row_bytes = size_t(grid.width) * 3;
  for (size_t i = 0; i < images.size(); ++i) {
    const size_t x0 = (i % size_t(cols)) * size_t(w), y0 = (i / size_t(cols)) * size_t(h);
    for (int y = 0; y < h; ++y)
      std::memcpy(&grid.rgb[(y0 + size_t(y)) * grid_row_bytes + x0 * 3], &images[i].rgb[size_t(y) * row_bytes],
                  row_bytes);
  }
  return grid;
}

}  // namespace kakusan
