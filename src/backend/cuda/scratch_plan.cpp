// CudaBackend's scratch as the memory planner sees it: for each op, which scratch slot grows to how many bytes.
// Each rule mirrors its op's code — a change there (a new conversion, another workspace) changes the rule here.
//   linear (linear.cpp): a bias that is not dense f32 -> kBias; a weight that is not dense -> kWeight; the
//     activation converted to the weight's dtype (f16/bf16 models: every call) -> kInput; cuBLASLt's
//     workspace -> kWorkspace.
//   conv2d (conv2d.cpp, conv_graph.cpp): the input converted to the weight's dtype, or copied into a zero-padded
//     buffer for asymmetric padding -> kInput; the weight if not dense -> kWeight; cuDNN's workspace (graph or
//     descriptor plan) -> kWorkspace, at its cap (the engine, and so its workspace, is chosen by cuDNN on the
//     device; both plan makers skip what exceeds the cap). Narrow weights: the graph API's f32 copy of a bias
//     that is not dense f32 -> kBias; and since only the device knows whether cuDNN takes the graph, the
//     descriptor API's fallback too: the f16/bf16 output before the bias widens it -> kOutput, the bias if not
//     dense -> kBias (the larger of the two rules). An input with no pixels or channels (the bias alone): the
//     bias if not dense -> kBias.
//   attention (ops.cpp): q, k, v that are not f32 rows with a contiguous last dimension are made dense f32 in
//     kInput, kWeight, kOperand2.
// The tallies take the largest request per slot, the slots' growth rule (CudaBackend::scratch).
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/op_checks.h"

namespace kakusan::cuda {
namespace {

// CudaBackend::dense: a copy in `slot` unless the view already is contiguous in `dtype`.
void dense_need(ScratchTally& tally, int slot, const TensorView& v, DType dtype) {
  if (v.empty() || (v.is_contiguous() && v.dtype == dtype)) return;
  tally.need(slot, std::max<int64_t>(v.numel() * int64_t(dtype_size(dtype)), 1));
}

}  // namespace

void CudaBackend::linear_scratch(const TensorView& x, const TensorView& w, const TensorView& bias,
                                 ScratchTally& tally) {
  const int64_t k = w.dim(w.rank() - 1);
  const int64_t m = linear_rows(x), n = w.dim(0);
  if (m == 0 || n == 0) return;
  dense_need(tally, kBias, bias, DType::F32);
  if (k == 0) return;
  dense_need(tally, kWeight, w, w.dtype);
  dense_need(tally, kInput, x, w.dtype);
  tally.need(kWorkspace, int64_t(kGemmWorkspace));
}

void CudaBackend::conv2d_scratch(const TensorView& x, const TensorView& w, const TensorView& bias,
                                 const Conv2dParams& p, const TensorView& y, ScratchTally& tally) {
  if (y.numel() == 0) return;
  if (x.dim(1) == 0 || x.dim(2) == 0 || x.dim(3) == 0) {  // no input pixels: the bias alone
    dense_need(tally, kBias, bias, bias.dtype);
    return;
  }
  const DType t = w.dtype;
  if (p.pad_top == p.pad_bottom && p.pad_left == p.pad_right) {
    dense_need(tally, kInput, x, t);
  } else {
    const int64_t padded = x.dim(0) * x.dim(1) * (x.dim(2) + p.pad_top + p.pad_bottom) *
                           (x.dim(3) + p.pad_left + p.pad_right);
    tally.need(kInput, padded * int64_t(dtype_size(t)));
  }
  dense_need(tally, kWeight, w, t);
  tally.need(kWorkspace, int64_t(kConvWorkspaceLimit));
  const bool narrow = t != DType::F32;
  if (narrow) {
    dense_need(tally, kBias, bias, DType::F32);
    tally.need(kOutput, y.numel() * int64_t(dtype_size(t)));
  }
  if (narrow || !bias.empty()) dense_need(tally, kBias, bias, bias.dtype);
}

void CudaBackend::attention_scratch(const TensorView& q, const TensorView& k, const TensorView& v,
                                    ScratchTally& tally) {
  for (const auto& [view, slot] : {std::pair{q, kInput}, {k, kWeight}, {v, kOperand2}}) {
    if (view.dtype == DType::F32 && view.strides[2] == 1) continue;
    tally.need(slot, view.numel() * int64_t(sizeof(float)));
  }
}

}  // namespace kakusan::cuda
