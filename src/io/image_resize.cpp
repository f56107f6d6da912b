#include "io/image_resize.h"

#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "core/error.h"

namespace kakusan {

namespace {

// Pillow's fixed point: 32-bit accumulators, 8-bit samples, 2 bits of headroom.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kLanczosSupport = 3.0;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= std::numbers::pi;
  return std::sin(x) / x;
}

double lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

// For each output pixel along one axis: the first input pixel it reads, how many, and their fixed-point
// weights (Pillow's precompute_coeffs + normalize_coeffs_8bpc, double math as there).
struct AxisCoeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // ksize per output pixel
};

AxisCoeffs axis_coeffs(int in_size, int out_size) {
  const double scale = double(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kLanczosSupport * filterscale;
  AxisCoeffs c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.first.resize(size_t(out_size));
  c.count.resize(size_t(out_size));
  c.weights.assign(size_t(out_size) * size_t(c.ksize), 0);
  std::vector<double> k(size_t(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);  // truncation, as C's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[size_t(x)] = lanczos((x + xmin - center + 0.5) * ss);
      ww += k[size_t(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[size_t(x)] / ww : k[size_t(x)];
      const double fixed = w * (1 << kPrecisionBits);
      c.weights[size_t(xx) * size_t(c.ksize) + size_t(x)] = int32_t(w < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    c.first[size_t(xx)] = xmin;
    c.count[size_t(xx)] = xmax;
  }
  return c;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return uint8_t(v >> kPrecisionBits);
}

// One pass along an axis: `stride` bytes between neighbouring samples of that axis.
uint8_t filter(const uint8_t* line, int64_t stride, const AxisCoeffs& c, int out_index) {
  int32_t acc = 1 << (kPrecisionBits - 1);
  const int32_t* w = &c.weights[size_t(out_index) * size_t(c.ksize)];
  const uint8_t* p = line + int64_t(c.first[size_t(out_index)]) * stride;
  for (int i = 0; i < c.count[size_t(out_index)]; ++i) acc += int32_t(p[i * stride]) * w[i];
  return clip8(acc);
}

}  // namespace

Image resize_lanczos(const Image& image, int width, int height) {
  KK_CHECK(width >= 1 && height >= 1, "cannot resize an image to ", width, "x", height);
  KK_ASSERT(int64_t(image.rgb.size()) == int64_t(image.width) * image.height * 3);
  if (width == image.width && height == image.height) return image;
  const AxisCoeffs horiz = axis_coeffs(image.width, width);
  const AxisCoeffs vert = axis_coeffs(image.height, height);
  // Pillow resamples horizontally only the rows the vertical pass reads, and skips a pass whose size is kept.
  const bool need_horizontal = width != image.width;
  const bool need_vertical = height != image.height;
  const int row_first = vert.first.front();
  const int row_last = vert.first.back() + vert.count.back();
  Image temp;
  const Image* src = &image;
  int row_offset = 0;
  if (need_horizontal) {
    temp.width = width;
    temp.height = row_last - row_first;
    temp.rgb.resize(size_t(temp.width) * size_t(temp.height) * 3);
    for (int y = 0; y < temp.height; ++y) {
      const uint8_t* in_row = &image.rgb[size_t(y + row_first) * size_t(image.width) * 3];
      for (int x = 0; x < width; ++x)
        for (int ch = 0; ch < 3; ++ch)
          temp.rgb[(size_t(y) * size_t(width) + size_t(x)) * 3 + size_t(ch)] = filter(in_row + ch, 3, horiz, x);
    }
    src = &temp;
    row_offset = row_first;
  }
  if (!need_vertical) return *src;
  Image out{width, height, std::vector<uint8_t>(size_t(width) * size_t(height) * 3)};
  AxisCoeffs shifted = vert;
  for (int& first : shifted.first) first -= row_offset;
  const int64_t stride = int64_t(width) * 3;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int ch = 0; ch < 3; ++ch)
        out.rgb[(size_t(y) * size_t(width) + size_t(x)) * 3 + size_t(ch)] =
            filter(src->rgb.data() + int64_t(x) * 3 + ch, stride, shifted, y);
  return out;
}

}  // namespace kakusan
