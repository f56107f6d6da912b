// kakusan compare A.png B.png: how far two images of the same size are apart, over their 8-bit RGB values —
// PSNR (10·log10(255² / mean squared difference), "inf" when identical), the largest and the mean absolute
// difference. Used to measure what --dtype bf16 changes against an fp32 image of the same seed.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "command.h"
#include "core/error.h"
#include "io/png.h"

namespace kakusan::cli {
namespace {

int run_compare(const std::string& a_path, const std::string& b_path) {
  const Image a = read_png(a_path).image;
  const Image b = read_png(b_path).image;
  KK_CHECK(a.width == b.width && a.height == b.height, "the images differ in size: ", a_path, " is ", a.width, "x",
           a.height, ", ", b_path, " is ", b.width, "x", b.height);
  double squared = 0, absolute = 0;
  int worst = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    const int d = std::abs(int(a.rgb[i]) - int(b.rgb[i]));
    squared += double(d) * d;
    absolute += d;
    worst = std::max(worst, d);
  }
  const double n = double(a.rgb.size());
  const double mse = squared / n;
  const std::string psnr = mse == 0 ? "inf" : std::to_string(10 * std::log10(255.0 * 255.0 / mse));
  std::printf("PSNR %s dB, max difference %d, mean difference %.4f (of 255, over %zu values)\n", psnr.c_str(), worst,
              absolute / n, a.rgb.size());
  return 0;
}

const bool registered = register_command({
    "compare",
    "PSNR, max and mean difference of two images of the same size (8-bit RGB)",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<std::string>();
      auto b = std::make_shared<std::string>();
      app.add_option("a", *a, "First PNG")->required();
      app.add_option("b", *b, "Second PNG")->required();
      return [a, b] { return run_compare(*a, *b); };
    },
});

}  // namespace
}  // namespace kakusan::cli
