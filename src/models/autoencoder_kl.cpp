#include "models/autoencoder_kl.h"

#include <algorithm>

#include "models/model_folder_load.h"

namespace kakusan {

DiagonalGaussianDistribution DiagonalGaussianDistribution::from_moments(Backend& be, Tensor moments) {
  KK_CHECK(moments.rank() == 4 && moments.dim(1) % 2 == 0, "VAE moments ", moments.shape().str(),
           " must be [B, 2·C, h, w]");
  DiagonalGaussianDistribution d;
  const TensorView mean = moments.view().narrow(1, 0, moments.dim(1) / 2);
  d.mean = be.empty(mean.shape, mean.dtype);
  be.copy(mean, d.mean);
  d.moments = std::move(moments);
  return d;
}

TensorView DiagonalGaussianDistribution::raw_logvar() const {
  const int64_t c = moments.dim(1) / 2;
  return moments.view().narrow(1, c, c);
}

Tensor DiagonalGaussianDistribution::sample(Backend& be, Generator& generator) const {
  // The noise is drawn on the host (the generator is the pipeline's, torch-compatible) and uploaded.
  const Tensor noise = generator.randn(mean.shape());
  Tensor on_backend = be.empty(noise.shape(), mean.dtype());
  be.upload(noise, on_backend);
  Tensor x = be.empty(mean.shape(), mean.dtype());
  be.gaussian_sample(moments, on_backend, x);
  return x;
}

AutoencoderKL::AutoencoderKL(const AutoencoderKLConfig& config)
    : config_(config), encoder(config), decoder(config),
      quant_conv(2 * config.latent_channels, 2 * config.latent_channels, 1),
      post_quant_conv(config.latent_channels, config.latent_channels, 1) {}

AutoencoderKL AutoencoderKL::load(const std::filesystem::path& dir, DType weight_dtype) {
  return load_model_folder<AutoencoderKL, AutoencoderKLConfig>(dir, weight_dtype, "", "diffusers", "AutoencoderKL");
}

void AutoencoderKL::visit(WeightVisitor& v) {
  v.child("encoder", encoder);
  v.child("decoder", decoder);
  if (config_.use_quant_conv) v.child("quant_conv", quant_conv);
  if (config_.use_post_quant_conv) v.child("post_quant_conv", post_quant_conv);
}

Tensor AutoencoderKL::decode(Context& ctx, const TensorView& z, const VaeMemoryOptions& options,
                             Activations* trace) const {
  check_compute_dtype(ctx, "VAE decode");
  KK_CHECK(z.rank() == 4 && z.dim(1) == config_.latent_channels && z.dtype == ctx.compute_dtype,
           "VAE decode: latents ", z.shape.str(), " must be ", dtype_name(ctx.compute_dtype), " [B, ",
           config_.latent_channels, ", h, w]");
  const int64_t f = config_.downscale_factor();
  Tensor out = ctx.backend.empty({z.dim(0), config_.out_channels, z.dim(2) * f, z.dim(3) * f}, z.dtype);
  const int64_t in_tile = tile_latent_size(options), out_tile = tile_sample_size(options);
  const bool tiled = options.tiling && (z.dim(2) > in_tile || z.dim(3) > in_tile);
  const int64_t step = options.slicing ? 1 : z.dim(0);
  for (int64_t b = 0; b < z.dim(0); b += step) {
    const TensorView zs = z.slice0(b, b + step), os = out.view().slice0(b, b + step);
    if (tiled)
      run_tiled(
          ctx, zs, in_tile, out_tile, [&](const Shape& s) { return decoder.output_shape(s); },
          [&](const TensorView& in, const TensorView& o) { decode_into(ctx, in, o, nullptr); }, os);
    else
      decode_into(ctx, zs, os, trace);
  }
  return out;
}

void AutoencoderKL::decode_into(Context& ctx, const TensorView& z, const TensorView& out, Activations* trace) const {
  if (!config_.use_post_quant_conv) return decoder.forward(ctx, z, out);
  ArenaScope scope(ctx.arena);
  TensorView h = ctx.arena.alloc(z.shape);
  post_quant_conv.forward(ctx.backend, z, h);
  record(trace, ctx.backend, "post_quant_conv", h);
  decoder.forward(ctx, h, out);
}

// diffusers' tiled_decode / tiled_encode: tiles of `in_tile` input pixels every 75% of a tile, each run
// separately by `run` into an arena buffer, then blended with its (already blended) upper and left neighbours
// over 25% of an output tile, cropped and joined into `out`.
void AutoencoderKL::run_tiled(Context& ctx, const TensorView& x, int64_t in_tile, int64_t out_tile,
                              const std::function<Shape(const Shape&)>& out_shape,
                              const std::function<void(const TensorView&, const TensorView&)>& run,
                              const TensorView& out) const {
  ArenaScope scope(ctx.arena);
  const int64_t stride = int64_t(double(in_tile) * (1.0 - kTileOverlap));
  const int64_t blend = int64_t(double(out_tile) * kTileOverlap);
  const int64_t limit = out_tile - blend;
  KK_CHECK(stride > 0, "VAE tiling: tiles of ", out_tile, " are too small");
  std::vector<std::vector<TensorView>> rows;
  for (int64_t i = 0; i < x.dim(2); i += stride) {
    rows.emplace_back();
    for (int64_t j = 0; j < x.dim(3); j += stride) {
      const TensorView in =
          x.narrow(2, i, std::min(in_tile, x.dim(2) - i)).narrow(3, j, std::min(in_tile, x.dim(3) - j));
      // Tiles stay in the arena below the scratch of each run, which is released after it.
      const TensorView result = ctx.arena.alloc(out_shape(in.shape));
      ArenaScope tile_scope(ctx.arena);
      const TensorView dense = ctx.arena.alloc(in.shape);
      ctx.backend.copy(in, dense);
      run(dense, result);
      rows.back().push_back(result);
    }
  }
  int64_t y0 = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    int64_t x0 = 0, row_height = 0;
    for (size_t j = 0; j < rows[i].size(); ++j) {
      const TensorView& t = rows[i][j];
      if (i > 0) ctx.backend.blend_tiles(rows[i - 1][j], t, blend, true);
      if (j > 0) ctx.backend.blend_tiles(rows[i][j - 1], t, blend, false);
      const int64_t h = std::min(limit, t.dim(2)), w = std::min(limit, t.dim(3));
      ctx.backend.copy(t.narrow(2, 0, h).narrow(3, 0, w), out.narrow(2, y0, h).narrow(3, x0, w));
      x0 += w;
      row_height = h;
    }
    y0 += row_height;
  }
  KK_ASSERT(y0 == out.dim(2));
}

void AutoencoderKL::encode_into(Context& ctx, const TensorView& x, const TensorView& moments) const {
  if (!config_.use_quant_conv) return encoder.forward(ctx, x, moments);
  ArenaScope scope(ctx.arena);
  TensorView h = ctx.arena.alloc(moments.shape);
  encoder.forward(ctx, x, h);
  quant_conv.forward(ctx.backend, h, moments);
}

DiagonalGaussianDistribution AutoencoderKL::encode(Context& ctx, const TensorView& x,
                                                   const VaeMemoryOptions& options) const {
  check_compute_dtype(ctx, "VAE encode");
  KK_CHECK(x.rank() == 4 && x.dim(1) == config_.in_channels && x.dtype == ctx.compute_dtype, "VAE encode: image ",
           x.shape.str(), " must be ", dtype_name(ctx.compute_dtype), " [B, ", config_.in_channels, ", H, W]");
  const int64_t f = config_.downscale_factor();
  KK_CHECK(x.dim(2) % f == 0 && x.dim(3) % f == 0, "VAE encode: image height and width (", x.dim(2), "x", x.dim(3),
           ") must be multiples of ", f);
  const Shape moments_shape = encoder.output_shape(x.shape);
  Tensor moments = ctx.backend.empty(moments_shape, x.dtype);
  const int64_t in_tile = tile_sample_size(options), out_tile = tile_latent_size(options);
  const bool tiled = options.tiling && (x.dim(2) > in_tile || x.dim(3) > in_tile);
  const int64_t step = options.slicing ? 1 : x.dim(0);
  for (int64_t b = 0; b < x.dim(0); b += step) {
    const TensorView xs = x.slice0(b, b + step), ms = moments.view().slice0(b, b + step);
    if (tiled)
      run_tiled(
          ctx, xs, in_tile, out_tile, [&](const Shape& s) { return encoder.output_shape(s); },
          [&](const TensorView& in, const TensorView& o) { encode_into(ctx, in, o); }, ms);
    else
      encode_into(ctx, xs, ms);
  }
  return DiagonalGaussianDistribution::from_moments(ctx.backend, std::move(moments));
}

}  // namespace kakusan
