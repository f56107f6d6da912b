// consumer MODEL OUT.ppm: one image from the C++ API of an installed kakusan, written as a binary PPM.
#include <kakusan/pipeline.h>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL OUT.ppm\n", argv[0]);
    return 2;
  }
  try {
    auto pipe = kakusan::StableDiffusionPipeline::load(argv[1]);
    kakusan::GenerateParams params;
    params.prompt = {"portrait photo of a old warrior chief"};
    params.num_inference_steps = 2;
    params.seeds = {1};
    const kakusan::GenerateResult out = pipe.generate(params);
    const kakusan::Image& image = out.images.at(0);
    std::FILE* f = std::fopen(argv[2], "wb");
    if (f == nullptr) return 1;
    std::fprintf(f, "P6\n%d %d\n255\n", image.width, image.height);
    std::fwrite(image.rgb.data(), 1, image.rgb.size(), f);
    return std::fclose(f) == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
