// The one line the CLI says when bf16 will not be fast here: the numbers stay the precision contract's
// (backend/backend.h), only the speed is fp32's. Header-only: both the kakusan and kakusan-serve binaries use it.
#pragma once

#include <cstdio>
#include <string>

#include "core/cpu_features.h"

namespace kakusan::cli {

// On stderr, when `bf16` is asked for a run on the CPU and this CPU has no AVX512_BF16.
inline void notice_bf16_speed(bool bf16, const std::string& device) {
  const bool on_cpu = device.empty() || device == "cpu";
  if (bf16 && on_cpu && !cpu_has_avx512_bf16())
    std::fprintf(stderr, "kakusan: this CPU has no bf16 dot-product instructions (AVX512_BF16): bf16 runs at fp32 "
                         "speed\n");
}

}  // namespace kakusan::cli
