#include "pipeline/memory_plan.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"

namespace kakusan {

int64_t MemoryEstimate::peak() const {
  return std::max({encoding.total(), image_encoding.total(), denoising.total(), decoding.total()}) + overhead;
}

std::string MemoryEstimate::describe() const {
  const char* names[] = {"text encoder", "UNet", "VAE decode", "VAE encode"};
  const PhaseMemory* phases[] = {&encoding, &denoising, &decoding, &image_encoding};
  int largest = 0;
  for (int i = 1; i < 4; ++i)
    if (phases[i]->total() > phases[largest]->total()) largest = i;
  const PhaseMemory& p = *phases[largest];
  return str_cat(format_megabytes(peak()), " (", names[largest], ": weights ", format_megabytes(p.weights),
                 " + activations ", format_megabytes(p.arena), " + buffers ", format_megabytes(p.other),
                 "; runtime ", format_megabytes(overhead), ")");
}

int64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

std::string format_megabytes(int64_t bytes) { return str_cat((bytes + 500'000) / 1'000'000, " MB"); }

}  // namespace kakusan
