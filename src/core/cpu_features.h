// What the CPU running this process can do, detected once (cpuid through the compiler's builtins). Speed
// only: every path gives the same numbers (the precision contract in backend/backend.h), so these answer
// "how fast", never "what result".
#pragma once

namespace kakusan {

// The bf16 dot-product instructions (AVX512_BF16: vdpbf16ps). Without them bf16 runs at fp32 speed; with
// them it may still (where vdpbf16ps is slower than fp32 FMAs, as on the development machine: bench_ops
// measures both rates).
bool cpu_has_avx512_bf16();

}  // namespace kakusan
