// What the CPU running this process can do, detected once (cpuid through the compiler's builtins). Speed
// only: every path gives the same numbers (the precision contract in backend/backend.h), so these answer
// "how fast", never "what result".
#pragma once

namespace kakusan {

// The bf16 dot-product instructions (AVX512_BF16: vdpbf16ps). Without them bf16 runs at fp32 speed; with
// them bf16 products run faster where vdpbf16ps outruns the fp32 FMAs (twice the rate on AMD Zen 4/5, half
// on the Intel machines of docs/bf16.md: bench_ops measures both rates, and the CPU backend times its two
// bf16 GEMM paths once, gemm.h's Bf16Gemm).
bool cpu_has_avx512_bf16();

// Whether bf16 products run faster here than f32 ones: AVX512_BF16 on an AMD CPU (Zen 4 and 5 issue vdpbf16ps
// at their FMA's rate, so twice the multiply-adds) or with AMX-BF16 tiles (which oneDNN's bf16 matmul uses).
// Intel's AVX512_BF16 without AMX runs vdpbf16ps at half the FMA rate (docs/bf16.md). A rule on the CPU, not a
// timing, so the same machine always takes the same path and gives the same image for the same seed.
bool cpu_has_fast_bf16_products();

}  // namespace kakusan
