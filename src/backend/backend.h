// The compute backend: the one narrow interface through which models run every heavy op.
//
// Model code calls only these functions, on TensorViews, so a second backend (CUDA, another CPU kernel
// library) slots in without touching models. Every op has a plain-loop reference implementation
// (reference_backend()) that the fast one (cpu_backend()) is tested against.
//
// Conventions (the contract every backend keeps):
//   - Activations (op inputs and outputs other than weights) are in the context's compute dtype
//     (Context::compute_dtype); a backend lists the compute dtypes it supports (supports_compute_dtype), and
//     a model run in another one fails with a clear error. Only F32 is implemented today.
//   - Weights may be f32, f16 or bf16 whatever the compute dtype (converted at use, so an fp16 model costs
//     fp16 memory).
//   - Products take the precision of their weight (torch_dtype's meaning, one rule for every backend): with a
//     bf16 weight, linear and conv2d round the activation operand to bf16 (round-to-nearest-even) and
//     multiply bf16 x bf16 with f32 accumulation into an f32 output — torch's bf16 matmul, minus its final
//     rounding of the output. An f16 weight does the same in f16 on backends with f16 arithmetic (CUDA); the
//     CPU backends widen it to f32 exactly (this CPU has no f16 dot products; fp16 on the CPU is a memory
//     saver). f32 weights give f32 products. Attention has no weight: AttentionParams::precision says it.
//     A backend without the hardware (a CPU without AVX512_BF16) still gives the rounded operands' result,
//     only slower, so every backend agrees with the reference.
//   - Statistics and sums stay f32 (or wider) in every compute dtype: group/layer-norm mean and variance,
//     the attention softmax's max and sum, GEMM and convolution accumulation.
//   - Images are NCHW. Outputs are contiguous and distinct from inputs unless an op says that aliasing is
//     allowed. Every operand lives in this backend's memory (see upload/download).
#pragma once

#include <cstdint>
#include <memory>

#include "core/allocator.h"
#include "core/tensor.h"

namespace kakusan {

// ReLU, SoftClamp3 = 3·tanh(x/3), SignedToUnit = (x + 1)/2 and UnitToSigned = 2x − 1 are TAESD's
// (AutoencoderTiny's) elementwise steps, each rounded as its torch expression.
enum class Activation : uint8_t { None, SiLU, GELU, GELUTanh, QuickGELU, ReLU, SoftClamp3, SignedToUnit, UnitToSigned };

struct Conv2dParams {
  int stride = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  static Conv2dParams symmetric(int pad, int stride = 1) { return {stride, pad, pad, pad, pad}; }
};

// How attention is computed. All strategies give the same numbers (to float rounding).
enum class AttentionStrategy : uint8_t {
  Auto,    // the backend's fastest
  Full,    // materialise the whole score matrix per (batch, head)
  Sliced,  // diffusers' enable_attention_slicing: slice_size (batch*head) slices at a time
  Flash,   // tiled with an online softmax; never materialises Tq x Tk scores
};

struct AttentionParams {
  int heads = 1;
  float scale = 1.0f;  // multiplies q·kᵀ (diffusers: head_dim^-0.5)
  bool causal = false; // mask keys after the query position (CLIP)
  AttentionStrategy strategy = AttentionStrategy::Auto;
  int slice_size = 0;  // for Sliced; 0 means one slice per (batch, head)
  // F32, or BF16/F16 (the pipeline sets it from the model's weight dtype): q, k, v and the softmax
  // probabilities are rounded to it before their products; scores, softmax max/sum and accumulation stay f32.
  // The probabilities rounded are e^(s − k·ln 2) before normalisation (k: the row max rounded up to a power
  // of two, so tiled kernels round the same numbers), divided by their f32 sum after P·V (precision.h).
  DType precision = DType::F32;
};

// A recorded sequence of ops (a CUDA graph): see Backend::begin_capture. It must not outlive its backend.
class OpGraph {
 public:
  virtual ~OpGraph() = default;
  // Runs the recorded ops again, in their order, on the addresses they were recorded with (reading whatever
  // those hold now). False when it cannot because the backend's own buffers it used were replaced since (its
  // kernels' scratch grew or was given back): nothing ran, and the caller runs the ops eagerly (which sizes
  // the scratch again) before capturing anew.
  [[nodiscard]] virtual bool replay() = 0;
};

// The kernel scratch a phase holds, for the memory planner. A device backend keeps one scratch buffer per
// purpose (a converted activation, a padded input, a convolution workspace), each grown to the largest size an
// op asked and kept until release_scratch() at the phase's end, so a phase holds, per buffer, its largest
// request: the planner's dry pass reports every linear / conv2d / attention call to the backend's tally_*
// functions below, which say what each buffer would need.
class ScratchTally {
 public:
  static constexpr int kBuffers = 8;
  void need(int buffer, int64_t bytes);  // buffer in [0, kBuffers)
  int64_t total() const;

 private:
  int64_t largest_[kBuffers] = {};
};

class Backend : public DeviceAllocator {
 public:
  virtual const char* name() const = 0;

  // Memory. A backend allocates in its own memory (device(), allocate(), empty() of DeviceAllocator; arenas
  // take the backend as their allocator) and its ops accept only that memory, plus views of it. Host
  // backends (cpu, reference, null, profiling) run on host memory, so host tensors and mapped weights are
  // theirs at no copy. Data crosses between host and device only here (ggml's tensor_set / tensor_get):
  //   upload:   host view (any strides, float dtypes convert) -> this backend's contiguous view
  //   download: this backend's view (any strides) -> contiguous host view
  // The host implementations are copies; a device backend overrides both.
  virtual void upload(const TensorView& host, const TensorView& dst);
  virtual void download(const TensorView& src, const TensorView& host);

  // Waits until every op and transfer enqueued so far has finished (a device backend's ops return once
  // enqueued; a host backend's have finished by then).
  virtual void synchronize() {}

  // Whether activations can be computed in `dtype` (see the contract above).
  virtual bool supports_compute_dtype(DType dtype) const { return dtype == DType::F32; }
  // Whether an f16 weight makes an f16 product here (f16 arithmetic, as on CUDA) or is widened to f32 (the CPU
  // backends): the contract above. The pipeline's attention follows the same rule.
  virtual bool has_f16_products() const { return false; }

  // y[M, N] = x[M, K] · w[N, K]ᵀ + bias[N]. x and y may have leading dims (M = numel / K). bias may be empty.
  virtual void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) = 0;

  // y[N, O, Ho, Wo] = conv(x[N, I, H, W], w[O, I, kh, kw]) + bias[O] (bias may be empty).
  virtual void conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                      const TensorView& y) = 0;

  // Per sample, normalise each of `groups` channel groups over (channels of the group × spatial), apply
  // gamma/beta per channel, then `act` (None or SiLU). x: [N, C, ...]. y may alias x.
  virtual void group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta, float eps,
                          Activation act, const TensorView& y) = 0;

  // Normalise over the last dimension, then gamma/beta. y may alias x.
  virtual void layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                          const TensorView& y) = 0;

  // Multi-head attention. q [B, Tq, H·D], k [B, Tk, H·D], v [B, Tk, H·Dv] -> out [B, Tq, H·Dv]:
  // per head, softmax(scale · q·kᵀ, masked if causal) · v. q, k, v may be strided views (e.g. slices of a
  // fused qkv projection) as long as their last dimension is contiguous.
  virtual void attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                         const TensorView& out) = 0;

  // y = act(x), elementwise. y may alias x.
  virtual void activation(const TensorView& x, Activation act, const TensorView& y) = 0;

  // y = a + b, same shapes. y may alias a or b.
  virtual void add(const TensorView& a, const TensorView& b, const TensorView& y) = 0;

  // diffusers' GEGLU after its projection: x [M, 2N] -> y [M, N] = x[:, :N] · gelu(x[:, N:]) (exact erf GELU).
  virtual void geglu(const TensorView& x, const TensorView& y) = 0;

  // Nearest-neighbour resize of NCHW x [N, C, h, w] to y [N, C, H, W], as torch's mode="nearest": source
  // index floor(dst · (in / out)) in float32, clamped to the input (×2 upsampling is the common case).
  virtual void resize_nearest(const TensorView& x, const TensorView& y) = 0;

  // y = alpha · x and y = x / divisor, elementwise with one float rounding, as torch's `x * a` and `x / a`
  // (latents × init_noise_sigma; latents ÷ the VAE's scaling_factor). y may alias x.
  virtual void scale(const TensorView& x, float alpha, const TensorView& y) = 0;
  virtual void divide(const TensorView& x, float divisor, const TensorView& y) = 0;

  // Classifier-free guidance: noise_pred [2B, ...] holds the unconditional predictions then the text ones;
  // out [B, ...] = uncond + guidance · (text − uncond), rounded after each operation in that order.
  virtual void cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) = 0;

  // diffusers' get_timestep_embedding in float32: timesteps [1] or [B] (one value shared, or one per sample)
  // -> y [B, dim] = [sin(t·f_i) | cos(t·f_i)] with f_i = exp(-ln(10000) · i / (dim/2 − freq_shift)), halves
  // swapped when flip_sin_to_cos, a zero column last when dim is odd.
  virtual void timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift,
                                  const TensorView& y) = 0;

  // Row lookup: y[i..., :] = table[ids[i...], :] for int64 ids of any shape, table [rows, H] (float), y
  // ids.shape + [H]. An id outside [0, rows) is an error naming it.
  virtual void embedding(const TensorView& table, const TensorView& ids, const TensorView& y) = 0;

  // A draw from the VAE's latent distribution: moments [B, 2C, h, w] = cat(mean, logvar) on channels,
  // y [B, C, h, w] = mean + exp(0.5 · clamp(logvar, -30, 20)) · noise (noise drawn by the caller).
  virtual void gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) = 0;

  // diffusers' blend_v / blend_h for tiled VAE: the first `extent` rows (vertical) or columns of NCHW tile b
  // fade in from the last ones of its neighbour a: b = a · (1 − k/extent) + b · (k/extent), in float32.
  // extent is capped at both tiles' size; a must be at least as wide (vertical) or tall as b (its first columns
  // or rows take part); b is updated in place.
  virtual void blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) = 0;

  // y = x for any strides on either side (permutes, concatenation into narrow() views).
  virtual void copy(const TensorView& x, const TensorView& y) = 0;

  // Memory the backend holds outside the arenas (its kernels' working buffers, which grow to the largest
  // size an op asked for and stay for the next call).
  virtual size_t scratch_bytes() const { return 0; }
  // Gives those buffers back (called between phases). While an op runs on another thread (a second
  // pipeline), it gives back nothing.
  virtual void release_scratch() {}

  // Scratch one attention call of `tokens` queries over `keys` keys takes beyond the arena (score matrices),
  // for the memory planner; each backend knows its own kernels' rule.
  virtual int64_t attention_scratch_bytes(const AttentionParams&, int64_t /*tokens*/, int64_t /*keys*/) const {
    return 0;
  }

  // Capture (CUDA graphs): a step of ~1000 small ops recorded once and replayed costs one launch, not 1000.
  // begin_capture(): from here to end_capture(), the ops this thread calls are RECORDED, NOT EXECUTED (as
  // CUDA stream capture): operands are taken as they are (addresses, shapes, parameters) and results exist
  // only once the graph is replayed. False: this backend does not capture (the host backends) and ops keep
  // running. While capturing, nothing may allocate or free this backend's memory, grow its scratch, or wait
  // for the device (upload, download, embedding): such a call throws Error, after which the caller calls
  // abort_capture(). A device backend makes other threads' ops wait until the capture ends, so they never
  // land in it. begin, end and abort are called on the same thread.
  virtual bool begin_capture() { return false; }
  // Ends this thread's capture and returns the graph. Throws Error, the capture abandoned, when what was
  // recorded cannot be replayed (memory freed while capturing, an op the device could not capture).
  virtual std::unique_ptr<OpGraph> end_capture();
  // Abandons this thread's capture, if any (after an error): nothing recorded runs.
  virtual void abort_capture() noexcept {}

  // The scratch buffers a call of these operands would grow (ScratchTally; the operands' shapes, dtypes and
  // strides are the real run's, their memory is the dry pass's). Nothing on backends whose scratch the
  // planner's fixed allowance covers (the CPU's).
  virtual void tally_linear_scratch(const TensorView& /*x*/, const TensorView& /*w*/, const TensorView& /*bias*/,
                                    ScratchTally&) const {}
  virtual void tally_conv2d_scratch(const TensorView& /*x*/, const TensorView& /*w*/, const TensorView& /*bias*/,
                                    const Conv2dParams&, const TensorView& /*y*/, ScratchTally&) const {}
  virtual void tally_attention_scratch(const TensorView& /*q*/, const TensorView& /*k*/, const TensorView& /*v*/,
                                       const AttentionParams&, ScratchTally&) const {}

  // A device backend's memory for the memory planner: what its device has free plus what the backend already
  // holds (weights, arenas, pooled blocks); -1 on host backends, planned against the machine's memory.
  virtual int64_t device_memory_limit() const { return -1; }
};

// The argument checks of upload and download, shared with device backends' overrides: placements, shapes,
// dtypes, a contiguous destination.
void check_upload(const Backend& be, const TensorView& host, const TensorView& dst);
void check_download(const Backend& be, const TensorView& src, const TensorView& host);

// The fast CPU backend (BLAS GEMMs, vectorised and threaded kernels).
Backend& cpu_backend();
// Plain loops, written to be obviously right; the yardstick for every fast kernel.
Backend& reference_backend();

}  // namespace kakusan
