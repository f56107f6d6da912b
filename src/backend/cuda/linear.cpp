// linear on cuBLASLt: y[M, N] = x[M, K] · w[N, K]ᵀ + bias, as the column-major product yᵀ = w · xᵀ (w read
// transposed). Operands take the weight's dtype (an f32 activation is converted into scratch for f16/bf16
// weights), accumulation and output are f32 (CUBLAS_COMPUTE_32F: no TF32 for f32 weights), and the bias is
// the BIAS epilogue (an f32 copy of it when the weight is narrow). One plan (descriptors + algorithm from the
// heuristic) per shape, dtype and pointer alignment, made on first use.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/guard.h"
#include "backend/cuda/libraries.h"
#include "backend/cuda/plans.h"
#include "backend/op_checks.h"

namespace kakusan::cuda {
namespace {

cudaDataType_t blas_type(DType t) {
  switch (t) {
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

// The largest power of two (<= 256) dividing the address: cuBLASLt's heuristic must know it.
int alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && a % unsigned(align) != 0) align /= 2;
  return align;
}

}  // namespace

namespace {

// Descriptors for y (N × M, column-major) = op(w) · x with or without the BIAS epilogue.
std::unique_ptr<CudaBackend::GemmPlan> describe(int64_t m, int64_t n, int64_t k, DType dtype, bool fused_bias) {
  auto plan = std::make_unique<CudaBackend::GemmPlan>();
  plan->fused_bias = fused_bias;
  const cudaDataType_t t = blas_type(dtype);
  const Libraries& l = lib();
  check(l.cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "linear plan");
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  const cublasLtEpilogue_t epilogue = fused_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  const cudaDataType_t bias_type = CUDA_R_32F;
  check(l.cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)),
        "linear plan");
  check(l.cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep)), "linear plan");
  check(l.cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)),
        "linear plan");
  if (fused_bias)
    check(l.cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                           sizeof(bias_type)),
          "linear plan");
  // Column-major: A = w as K × N (ld K, transposed to N × K), B = x as K × M (ld K), D = y as N × M (ld N).
  check(l.cublasLtMatrixLayoutCreate(&plan->a, t, uint64_t(k), uint64_t(n), k), "linear plan");
  check(l.cublasLtMatrixLayoutCreate(&plan->b, t, uint64_t(k), uint64_t(m), k), "linear plan");
  check(l.cublasLtMatrixLayoutCreate(&plan->d, CUDA_R_32F, uint64_t(n), uint64_t(m), n), "linear plan");
  return plan;
}

// The heuristic's first algorithm for the plan, given the operands' alignment; false when it has none.
bool choose_algorithm(cublasLtHandle_t handle, CudaBackend::GemmPlan& plan, int align) {
  const Libraries& l = lib();
  cublasLtMatmulPreference_t pref = nullptr;
  check(l.cublasLtMatmulPreferenceCreate(&pref), "linear plan");
  const uint64_t workspace = CudaBackend::kGemmWorkspace;
  const uint32_t align_bytes = uint32_t(align);
  cublasStatus_t status = l.cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                 &workspace, sizeof(workspace));
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    if (status == CUBLAS_STATUS_SUCCESS)
      status = l.cublasLtMatmulPreferenceSetAttribute(pref, attr, &align_bytes, sizeof(align_bytes));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (status == CUBLAS_STATUS_SUCCESS)
    status = l.cublasLtMatmulAlgoGetHeuristic(handle, plan.op, plan.a, plan.b, plan.d, plan.d, pref, 1, &result,
                                              &found);
  l.cublasLtMatmulPreferenceDestroy(pref);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED) return false;
  check(status, "linear algorithm");
  plan.algo = result.algo;
  return found > 0;
}

}  // namespace

CudaBackend::GemmPlan& CudaBackend::gemm_plan(int64_t m, int64_t n, int64_t k, DType dtype, bool bias,
                                              const void* ptrs[4]) {
  int align = 256;
  for (int i = 0; i < 4; ++i)
    if (ptrs[i]) align = std::min(align, alignment(ptrs[i]));
  auto& slot = gemm_plans_[{m, n, k, int(dtype), bias, align}];
  if (slot) return *slot;
  auto plan = describe(m, n, k, dtype, bias);
  bool found = choose_algorithm(blas_, *plan, align);
  if (!found && bias) {  // no algorithm with the bias epilogue: the bias becomes a kernel of its own
    plan = describe(m, n, k, dtype, false);
    found = choose_algorithm(blas_, *plan, align);
  }
  KK_CHECK(found, "cuda linear: cuBLASLt has no algorithm for [", m, ", ", k, "] x [", n, ", ", k, "]ᵀ in ",
           dtype_name(dtype));
  slot = std::move(plan);
  return *slot;
}

void CudaBackend::linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) {
  const LinearDims dims = check_linear(x, w, bias, y);
  for (const auto& [what, t] : {std::pair{"x", x}, {"weight", w}, {"bias", bias}, {"y", y}})
    require_mine("linear", what, t);
  KK_CHECK(y.is_contiguous(), "cuda linear: y must be contiguous");
  if (dims.m == 0 || dims.n == 0) return;
  Guard guard(*this);
  const void* bias_f32 = bias.empty() ? nullptr : dense(bias, DType::F32, kBias);
  if (dims.k == 0) {  // an empty sum: y = bias (or 0)
    check(cudaMemsetAsync(y.data, 0, y.nbytes(), stream_), "linear");
    check(launch_bias_nchw(nullptr, kF32, bias_f32, kF32, static_cast<float*>(y.data), dims.m, dims.n, 1, stream_),
          "linear");
    return;
  }
  const DType t = w.dtype;  // products take the weight's precision
  const void* a = dense(w, t, kWeight);
  const void* b = dense(x, t, kInput);
  const void* ptrs[4] = {a, b, y.data, bias_f32};
  GemmPlan& plan = gemm_plan(dims.m, dims.n, dims.k, t, bias_f32 != nullptr, ptrs);
  if (bias_f32 && plan.fused_bias)
    check(lib().cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_f32,
                                               sizeof(bias_f32)),
          "linear bias");
  void* workspace = scratch(kWorkspace, kGemmWorkspace);
  const float one = 1.0f, zero = 0.0f;
  check(lib().cublasLtMatmul(blas_, plan.op, &one, a, plan.a, b, plan.b, &zero, y.data, plan.d, y.data, plan.d,
                             &plan.algo, workspace, kGemmWorkspace, stream_),
        "linear");
  if (bias_f32 && !plan.fused_bias)
    check(launch_bias_nchw(nullptr, kF32, bias_f32, kF32, static_cast<float*>(y.data), dims.m, dims.n, 1, stream_),
          "linear bias");
}

}  // namespace kakusan::cuda
