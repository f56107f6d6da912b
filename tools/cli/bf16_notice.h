// The one line the CLI says when bf16 will not be fast here: the numbers stay the precision contract's
// (backend/backend.h), only the speed is fp32's. Header-only: both the kakusan and kakusan-serve binaries use it.
#pragma once

#include <cstdio>
#include <string>

#include "core/cpu_features.h"

namespace kakusan::cli {

// On stderr, when `bf16` is asked for a run on the CPU and bf16 products are not faster here
// (cpu_has_fast_bf16_products: no AVX512_BF16, or vdpbf16ps at half the FMA rate).
inline void notice_bf16_speed(bool bf16, const std::string& device) {
  const bool on_cpu = device.empty() || device == "cpu";
  if (bf16 && on_cpu && !cpu_has_fast_bf16_products())
    std::fprintf(stderr, "kakusan: this CPU has no fast bf16 products (AVX512_BF16 on AMD, or AMX-BF16): bf16 runs "
                         "at fp32 speed, saving memory only\n");
}

}  // namespace kakusan::cli
