// CudaBackend's ops other than the GEMM and the convolution: argument checks (the shared op_checks), operands
// made dense where a kernel needs it, then one launch each on the backend's stream.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/guard.h"
#include "backend/op_checks.h"

namespace kakusan::cuda {
namespace {

float* f32(const TensorView& v) { return static_cast<float*>(v.data); }
Dt dt(const TensorView& v) { return v.empty() ? kF32 : Dt(v.dtype); }

void require_contiguous(const char* op, const char* what, const TensorView& v) {
  KK_CHECK(v.is_contiguous(), "cuda ", op, ": ", what, " must be contiguous");
}

}  // namespace

void CudaBackend::group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta,
                             float eps, Activation act, const TensorView& y) {
  const GroupNormDims d = check_group_norm(x, groups, gamma, beta, y);
  KK_CHECK(act == Activation::None || act == Activation::SiLU, "cuda group_norm: only None or SiLU may follow");
  for (const auto& [what, v] : {std::pair{"x", x}, {"gamma", gamma}, {"beta", beta}, {"y", y}})
    require_mine("group_norm", what, v);
  require_contiguous("group_norm", "y", y);
  Guard guard(*this);
  const void* g = gamma.empty() ? nullptr : dense(gamma, gamma.dtype, kWeight);
  const void* b = beta.empty() ? nullptr : dense(beta, beta.dtype, kBias);
  check(launch_group_norm(static_cast<const float*>(dense(x, DType::F32, kInput)), f32(y), d.batch, d.channels,
                          d.spatial, groups, g, dt(gamma), b, dt(beta), eps, act == Activation::SiLU, stream_),
        "group_norm");
}

void CudaBackend::layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                             const TensorView& y) {
  const RowsDims d = check_layer_norm(x, gamma, beta, y);
  for (const auto& [what, v] : {std::pair{"x", x}, {"gamma", gamma}, {"beta", beta}, {"y", y}})
    require_mine("layer_norm", what, v);
  require_contiguous("layer_norm", "y", y);
  Guard guard(*this);
  const void* g = gamma.empty() ? nullptr : dense(gamma, gamma.dtype, kWeight);
  const void* b = beta.empty() ? nullptr : dense(beta, beta.dtype, kBias);
  check(launch_layer_norm(static_cast<const float*>(dense(x, DType::F32, kInput)), f32(y), d.rows, d.cols, g,
                          dt(gamma), b, dt(beta), eps, stream_),
        "layer_norm");
}

void CudaBackend::attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                            const TensorView& out) {
  const AttentionDims d = check_attention(q, k, v, p, out);
  for (const auto& [what, t] : {std::pair{"q", q}, {"k", k}, {"v", v}, {"out", out}})
    require_mine("attention", what, t);
  require_contiguous("attention", "out", out);
  KK_CHECK(p.precision == DType::F32 || p.precision == DType::F16 || p.precision == DType::BF16,
           "cuda attention: precision must be F32, F16 or BF16");
  KK_CHECK(d.head_dim <= kMaxAttentionHeadDim && d.value_dim <= kMaxAttentionHeadDim, "cuda attention: head width ",
           std::max(d.head_dim, d.value_dim), " exceeds the kernel's ", kMaxAttentionHeadDim);
  Guard guard(*this);
  // The kernel reads rows of f32 with a contiguous last dimension (slices of a fused qkv projection are);
  // anything else is made dense first.
  auto rows = [&](const TensorView& t, Slot slot, int64_t& batch_stride, int64_t& token_stride) {
    if (t.dtype == DType::F32 && t.strides[2] == 1) {
      batch_stride = t.strides[0];
      token_stride = t.strides[1];
      return static_cast<const float*>(t.data);
    }
    batch_stride = t.dim(1) * t.dim(2);
    token_stride = t.dim(2);
    return static_cast<const float*>(dense(t, DType::F32, slot));
  };
  AttentionShape s{d.batch, d.q_len, d.kv_len, d.heads, d.head_dim, d.value_dim, 0, 0, 0, 0, 0, 0,
                   p.scale, p.causal, Dt(p.precision)};
  const float* qp = rows(q, kInput, s.q_batch_stride, s.q_token_stride);
  const float* kp = rows(k, kWeight, s.k_batch_stride, s.k_token_stride);
  const float* vp = rows(v, kOperand2, s.v_batch_stride, s.v_token_stride);
  check(launch_attention(qp, kp, vp, f32(out), s, stream_), "attention");
}

void CudaBackend::activation(const TensorView& x, Activation act, const TensorView& y) {
  check_same_shape("activation", x, y);
  check_f32("activation", "y", y);
  require_mine("activation", "x", x);
  require_mine("activation", "y", y);
  require_contiguous("activation", "y", y);
  Guard guard(*this);
  check(launch_activation(static_cast<const float*>(dense(x, DType::F32, kInput)), int(act), f32(y), y.numel(),
                          stream_),
        "activation");
}

void CudaBackend::add(const TensorView& a, const TensorView& b, const TensorView& y) {
  check_same_shape("add", a, b);
  check_same_shape("add", a, y);
  check_f32("add", "y", y);
  for (const auto& [what, t] : {std::pair{"a", a}, {"b", b}, {"y", y}}) require_mine("add", what, t);
  require_contiguous("add", "y", y);
  Guard guard(*this);
  check(launch_add(static_cast<const float*>(dense(a, DType::F32, kInput)),
                   static_cast<const float*>(dense(b, DType::F32, kOperand2)), f32(y), y.numel(), stream_),
        "add");
}

void CudaBackend::geglu(const TensorView& x, const TensorView& y) {
  const RowsDims d = check_geglu(x, y);
  require_mine("geglu", "x", x);
  require_mine("geglu", "y", y);
  require_contiguous("geglu", "y", y);
  Guard guard(*this);
  check(launch_geglu(static_cast<const float*>(dense(x, DType::F32, kInput)), f32(y), d.rows, d.cols, stream_),
        "geglu");
}

void CudaBackend::resize_nearest(const TensorView& x, const TensorView& y) {
  check_resize_nearest(x, y);
  require_mine("resize_nearest", "x", x);
  require_mine("resize_nearest", "y", y);
  require_contiguous("resize_nearest", "y", y);
  Guard guard(*this);
  check(launch_resize_nearest(static_cast<const float*>(dense(x, DType::F32, kInput)), f32(y), x.dim(0) * x.dim(1),
                              x.dim(2), x.dim(3), y.dim(2), y.dim(3), stream_),
        "resize_nearest");
}

void CudaBackend::scale(const TensorView& x, float alpha, const TensorView& y) {
  check_same_shape("scale", x, y);
  check_f32("scale", "y", y);
  require_mine("scale", "x", x);
  require_mine("scale", "y", y);
  require_contiguous("scale", "y", y);
  Guard guard(*this);
  check(launch_scale(static_cast<const float*>(dense(x, DType::F32, kInput)), alpha, false, f32(y), y.numel(),
                     stream_),
        "scale");
}

void CudaBackend::divide(const TensorView& x, float divisor, const TensorView& y) {
  check_same_shape("divide", x, y);
  check_f32("divide", "y", y);
  require_mine("divide", "x", x);
  require_mine("divide", "y", y);
  require_contiguous("divide", "y", y);
  Guard guard(*this);
  check(launch_scale(static_cast<const float*>(dense(x, DType::F32, kInput)), divisor, true, f32(y), y.numel(),
                     stream_),
        "divide");
}

void CudaBackend::cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) {
  check_cfg_combine(noise_pred, out);
  require_mine("cfg_combine", "noise_pred", noise_pred);
  require_mine("cfg_combine", "out", out);
  require_contiguous("cfg_combine", "out", out);
  Guard guard(*this);
  check(launch_cfg_combine(static_cast<const float*>(dense(noise_pred, DType::F32, kInput)), guidance, f32(out),
                           out.numel(), stream_),
        "cfg_combine");
}

void CudaBackend::timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift,
                                     const TensorView& y) {
  const int64_t batch = check_timestep_embedding(timesteps, freq_shift, y);
  require_mine("timestep_embedding", "timesteps", timesteps);
  require_mine("timestep_embedding", "y", y);
  require_contiguous("timestep_embedding", "y", y);
  Guard guard(*this);
  check(launch_timestep_embedding(static_cast<const float*>(dense(timesteps, DType::F32, kInput)), timesteps.numel(),
                                  f32(y), batch, y.dim(1), flip_sin_to_cos, freq_shift, stream_),
        "timestep_embedding");
}

// The one op that synchronises: an id outside the table must fail here, naming it, as on every backend; it
// runs once per prompt (the text encoder's token lookup), never inside a UNet step.
void CudaBackend::embedding(const TensorView& table, const TensorView& ids, const TensorView& y) {
  const int64_t rows = check_embedding(table, ids, y);
  for (const auto& [what, t] : {std::pair{"table", table}, {"ids", ids}, {"y", y}}) require_mine("embedding", what, t);
  require_contiguous("embedding", "y", y);
  Guard guard(*this);
  refuse_while_capturing("embedding");
  const auto* id_data = static_cast<const int64_t*>(dense(ids, DType::I64, kInput));
  check(cudaMemsetAsync(bad_id_, 0xFF, sizeof(*bad_id_), stream_), "embedding");
  check(launch_embedding(table.data, Dt(table.dtype), table.strides[0], table.strides[1], rows, table.dim(1), id_data,
                         ids.numel(), f32(y), bad_id_, stream_),
        "embedding");
  unsigned long long bad = 0;
  check(cudaMemcpyAsync(&bad, bad_id_, sizeof(bad), cudaMemcpyDeviceToHost, stream_), "embedding");
  check(cudaStreamSynchronize(stream_), "embedding");
  if (bad != ~0ull) {
    int64_t id = 0;
    check(cudaMemcpy(&id, id_data + bad, sizeof(id), cudaMemcpyDeviceToHost), "embedding");
    fail("embedding: id ", id, " (element ", bad, " of ids ", ids.shape, ") is outside the table's rows [0, ", rows,
         ")");
  }
}

void CudaBackend::gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) {
  check_gaussian_sample(moments, noise, y);
  for (const auto& [what, t] : {std::pair{"moments", moments}, {"noise", noise}, {"y", y}})
    require_mine("gaussian_sample", what, t);
  require_contiguous("gaussian_sample", "y", y);
  Guard guard(*this);
  const int64_t batch = y.dim(0);
  check(launch_gaussian_sample(static_cast<const float*>(dense(moments, DType::F32, kInput)),
                               static_cast<const float*>(dense(noise, DType::F32, kOperand2)), f32(y), batch,
                               batch == 0 ? 0 : y.numel() / batch, stream_),
        "gaussian_sample");
}

void CudaBackend::blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) {
  check_blend_tiles(a, b, extent, vertical);
  require_mine("blend_tiles", "a", a);
  require_mine("blend_tiles", "b", b);
  require_contiguous("blend_tiles", "b", b);
  Guard guard(*this);
  extent = std::min({vertical ? a.dim(2) : a.dim(3), vertical ? b.dim(2) : b.dim(3), extent});
  check(launch_blend_tiles(static_cast<const float*>(dense(a, DType::F32, kInput)), f32(b), a.dim(0) * a.dim(1),
                           a.dim(2), a.dim(3), b.dim(2), b.dim(3), extent, vertical, stream_),
        "blend_tiles");
}

void CudaBackend::copy(const TensorView& x, const TensorView& y) {
  check_same_shape("copy", x, y);
  require_mine("copy", "x", x);
  require_mine("copy", "y", y);
  Guard guard(*this);
  if (y.is_contiguous()) {
    copy_into(x, y.data, y.dtype);
    return;
  }
  check(launch_strided_copy(x.data, Dt(x.dtype), layout_of(x), y.data, Dt(y.dtype), layout_of(y), x.numel(), stream_),
        "copy");
}

}  // namespace kakusan::cuda
