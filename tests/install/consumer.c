/* c_consumer MODEL OUT.ppm: one image from the C API of an installed kakusan, written as a binary PPM. */
#include <kakusan/kakusan.h>

#include <stdio.h>

int main(int argc, char ** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL OUT.ppm\n", argv[0]);
    return 2;
  }
  struct kakusan_load_params lp = kakusan_default_load_params();
  kakusan_context * ctx = kakusan_load(argv[1], &lp);
  if (!ctx) {
    fprintf(stderr, "c_consumer: %s\n", kakusan_last_error());
    return 1;
  }
  const char * prompts[] = { "portrait photo of a old warrior chief" };
  uint64_t seeds[] = { 1 };
  struct kakusan_params p = kakusan_default_params();
  p.prompts = prompts;
  p.n_prompts = 1;
  p.seeds = seeds;
  p.n_seeds = 1;
  p.num_inference_steps = 2;
  kakusan_images * out = NULL;
  int status = 1;
  if (kakusan_generate(ctx, &p, &out) == KAKUSAN_OK && kakusan_images_count(out) == 1) {
    int w = 0, h = 0;
    const uint8_t * rgb = kakusan_images_rgb(out, 0, &w, &h);
    FILE * f = fopen(argv[2], "wb");
    if (f) {
      fprintf(f, "P6\n%d %d\n255\n", w, h);
      fwrite(rgb, 1, (size_t)w * (size_t)h * 3, f);
      status = fclose(f) == 0 ? 0 : 1;
    }
  } else {
    fprintf(stderr, "c_consumer: %s\n", kakusan_last_error());
  }
  kakusan_images_free(out);
  kakusan_free(ctx);
  return status;
}
