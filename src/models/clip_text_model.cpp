#include "models/clip_text_model.h"

#include <cmath>

#include "models/model_folder_load.h"

namespace kakusan {

ClipAttention::ClipAttention(int64_t hidden_size, int num_heads)
    : hidden(hidden_size),
      heads(num_heads),
      q_proj(hidden_size, hidden_size),
      k_proj(hidden_size, hidden_size),
      v_proj(hidden_size, hidden_size),
      out_proj(hidden_size, hidden_size) {}

void ClipAttention::visit(WeightVisitor& v) {
  v.child("k_proj", k_proj);
  v.child("v_proj", v_proj);
  v.child("q_proj", q_proj);
  v.child("out_proj", out_proj);
}

void ClipAttention::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  TensorView q = ctx.arena.alloc(x.shape);
  TensorView k = ctx.arena.alloc(x.shape);
  TensorView v = ctx.arena.alloc(x.shape);
  q_proj.forward(be, x, q);
  k_proj.forward(be, x, k);
  v_proj.forward(be, x, v);
  AttentionParams params = ctx.attention;
  params.heads = heads;
  // transformers scales q by head_dim^-0.5 before q·kᵀ; scaling the product is the same up to rounding.
  params.scale = float(1.0 / std::sqrt(double(hidden / heads)));
  params.causal = true;
  TensorView attended = ctx.arena.alloc(x.shape);
  be.attention(q, k, v, params, attended);
  out_proj.forward(be, attended, y);
}

void ClipMlp::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  ArenaScope scope(ctx.arena);
  const int64_t rows = x.numel() / fc1.in;
  TensorView hidden = ctx.arena.alloc({rows, fc1.out});
  fc1.forward(ctx.backend, x.reshape({rows, fc1.in}), hidden);
  ctx.backend.activation(hidden, act, hidden);
  fc2.forward(ctx.backend, hidden, y.reshape({rows, fc2.out}));
}

ClipEncoderLayer::ClipEncoderLayer(const ClipTextConfig& c)
    : self_attn(c.hidden_size, c.num_attention_heads),
      layer_norm1(c.hidden_size, c.layer_norm_eps),
      mlp(c.hidden_size, c.intermediate_size, c.activation()),
      layer_norm2(c.hidden_size, c.layer_norm_eps) {}

void ClipEncoderLayer::visit(WeightVisitor& v) {
  v.child("self_attn", self_attn);
  v.child("layer_norm1", layer_norm1);
  v.child("mlp", mlp);
  v.child("layer_norm2", layer_norm2);
}

void ClipEncoderLayer::forward(Context& ctx, const TensorView& x) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  TensorView normed = ctx.arena.alloc(x.shape);
  TensorView delta = ctx.arena.alloc(x.shape);
  layer_norm1.forward(be, x, normed);
  self_attn.forward(ctx, normed, delta);
  be.add(x, delta, x);
  layer_norm2.forward(be, x, normed);
  mlp.forward(ctx, normed, delta);
  be.add(x, delta, x);
}

void ClipTextEmbeddings::forward(Backend& be, const TensorView& input_ids, const TensorView& y) const {
  const int64_t batch = input_ids.dim(0), length = input_ids.dim(1);
  be.embedding(token_embedding, input_ids, y);
  // Positions 0 .. T-1 are the same for every sequence: one add, through a view broadcast over the batch.
  const TensorView positions = position_embedding.view().slice0(0, length);
  be.add(y, positions.as_strided({batch, length, hidden}, {0, positions.strides[0], positions.strides[1]}), y);
}

ClipTextModel::ClipTextModel(const ClipTextConfig& config)
    : config_(config), embeddings(config), final_layer_norm(config.hidden_size, config.layer_norm_eps) {
  layers.reserve(size_t(config.num_hidden_layers));
  for (int i = 0; i < config.num_hidden_layers; ++i) layers.emplace_back(config);
}

ClipTextModel ClipTextModel::load(const std::filesystem::path& dir, DType weight_dtype, const std::string& variant) {
  return load_model_folder<ClipTextModel, ClipTextConfig>(dir, weight_dtype, variant, "transformers", "CLIPTextModel");
}

void ClipTextModel::visit(WeightVisitor& v) {
  // transformers' CLIPTextModel wraps everything in `text_model` (a CLIPTextTransformer).
  struct TextTransformer {
    ClipTextModel& m;
    void visit(WeightVisitor& v) {
      v.child("embeddings", m.embeddings);
      struct Encoder {
        std::vector<ClipEncoderLayer>& layers;
        void visit(WeightVisitor& v) { v.children("layers", layers); }
      } encoder{m.layers};
      v.child("encoder", encoder);
      v.child("final_layer_norm", m.final_layer_norm);
    }
  } text_model{*this};
  v.child("text_model", text_model);
}

Tensor ClipTextModel::forward(Context& ctx, const TensorView& input_ids, int clip_skip,
                              std::vector<Tensor>* hidden_states) const {
  check_compute_dtype(ctx, "CLIPTextModel");
  KK_CHECK(input_ids.dtype == DType::I64 && input_ids.rank() == 2, "CLIPTextModel: input_ids must be int64 [batch, ",
           "length], got ", dtype_name(input_ids.dtype), " ", input_ids.shape.str());
  const int64_t batch = input_ids.dim(0), length = input_ids.dim(1);
  KK_CHECK(batch > 0 && length > 0 && length <= config_.max_position_embeddings, "CLIPTextModel: input_ids ",
           input_ids.shape.str(), " must have 1 to ", config_.max_position_embeddings, " tokens per sequence");
  const int num_layers = int(layers.size());
  KK_CHECK(clip_skip >= 0 && clip_skip <= num_layers, "clip_skip ", clip_skip,
           " is out of range: the text encoder has ", num_layers, " layers (0 to ", num_layers, " can be skipped)");

  ArenaScope scope(ctx.arena);
  const Shape shape{batch, length, config_.hidden_size};
  TensorView hidden = ctx.arena.alloc(shape);
  embeddings.forward(ctx.backend, input_ids, hidden);
  // A copy of each layer's output, in the backend's memory.
  auto keep = [&](const TensorView& h) {
    hidden_states->push_back(ctx.backend.empty(h.shape, h.dtype));
    ctx.backend.copy(h, hidden_states->back());
  };
  if (hidden_states != nullptr) {
    hidden_states->clear();
    keep(hidden);
  }
  // Without hidden_states, layers whose output clip_skip discards are not run.
  const int layers_to_run = hidden_states != nullptr ? num_layers : num_layers - clip_skip;
  TensorView selected = hidden;
  for (int i = 0; i < layers_to_run; ++i) {
    layers[size_t(i)].forward(ctx, hidden);
    if (hidden_states != nullptr) keep(hidden);
  }
  if (hidden_states != nullptr) selected = (*hidden_states)[size_t(num_layers - clip_skip)];

  Tensor out = ctx.backend.empty(shape, ctx.compute_dtype);
  final_layer_norm.forward(ctx.backend, selected, out);
  return out;
}

Tensor ClipTextModel::pooled_output(Backend& be, const TensorView& input_ids,
                                   const TensorView& last_hidden_state) const {
  KK_CHECK(input_ids.dtype == DType::I64 && input_ids.rank() == 2, "pooled_output: input_ids must be int64 [B, T]");
  const int64_t batch = input_ids.dim(0), length = input_ids.dim(1), hidden = config_.hidden_size;
  KK_CHECK(last_hidden_state.shape == Shape({batch, length, hidden}), "pooled_output: last_hidden_state ",
           last_hidden_state.shape.str(), " does not match input_ids ", input_ids.shape.str());
  // The eos positions are found on the host from the ids (the tokenizer's output: a few hundred integers,
  // downloaded when they live on the device), then one gather picks those rows.
  Tensor ids = Tensor::empty(input_ids.shape, DType::I64);
  if (input_ids.on_host())
    convert_into(input_ids, ids);
  else
    be.download(input_ids, ids);
  Tensor rows = Tensor::empty({batch}, DType::I64);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t* row = ids.i64() + b * length;
    int64_t position = 0;
    for (int64_t t = 0; t < length; ++t) {
      // Both rules take the first position that qualifies (torch.argmax returns the first maximum).
      if (config_.eos_token_id == 2 ? row[t] > row[position] : row[t] == config_.eos_token_id) {
        position = t;
        if (config_.eos_token_id != 2) break;
      }
    }
    rows.i64()[b] = b * length + position;
  }
  Tensor on_backend = be.empty({batch}, DType::I64);
  be.upload(rows, on_backend);
  Tensor out = be.empty({batch, hidden}, last_hidden_state.dtype);
  be.embedding(last_hidden_state.reshape({batch * length, hidden}), on_backend, out);
  return out;
}

}  // namespace kakusan
