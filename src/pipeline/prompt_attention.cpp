#include "pipeline/prompt_attention.h"

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "backend/staged_tensor.h"
#include "core/error.h"

namespace kakusan {

namespace {

// One token of lpw's re_attention at `pos` (its alternatives tried in the same order); `weight` is set for
// `:<number>)`. Written out rather than with std::regex, whose libstdc++ matcher recurses once per character
// and overflows the stack on a long run of text.
struct AttentionToken {
  std::string_view text;
  std::optional<std::string_view> weight;
};

AttentionToken next_token(std::string_view s, size_t pos) {
  auto special = [](char c) { return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':'; };
  const char c = s[pos];
  const size_t rest = s.size() - pos;
  if (c == '\\') {
    const bool escape = rest >= 2 && (s[pos + 1] == '(' || s[pos + 1] == ')' || s[pos + 1] == '[' ||
                                      s[pos + 1] == ']' || s[pos + 1] == '\\');
    return {s.substr(pos, escape ? 2 : 1), std::nullopt};
  }
  if (c == '(' || c == '[') return {s.substr(pos, 1), std::nullopt};
  if (c == ':') {
    size_t end = pos + 1;
    if (end < s.size() && (s[end] == '+' || s[end] == '-')) ++end;
    const size_t digits = end;
    while (end < s.size() && (s[end] == '.' || (s[end] >= '0' && s[end] <= '9'))) ++end;
    if (end > digits && end < s.size() && s[end] == ')')
      return {s.substr(pos, end + 1 - pos), s.substr(pos + 1, end - pos - 1)};
    return {s.substr(pos, 1), std::nullopt};
  }
  if (c == ')' || c == ']') return {s.substr(pos, 1), std::nullopt};
  size_t end = pos;
  while (end < s.size() && !special(s[end])) ++end;
  return {s.substr(pos, end - pos), std::nullopt};
}

double parse_weight(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  KK_CHECK(!text.empty() && end == text.c_str() + text.size(), "prompt weight \"", text, "\" is not a number");
  return value;
}

}  // namespace

std::vector<WeightedRun> parse_prompt_attention(std::string_view text) {
  std::vector<WeightedRun> runs;
  std::vector<size_t> round, square;
  auto multiply_from = [&](size_t start, double factor) {
    for (size_t i = start; i < runs.size(); ++i) runs[i].weight *= factor;
  };
  constexpr double kRound = 1.1, kSquare = 1 / 1.1;
  for (size_t pos = 0; pos < text.size();) {
    const AttentionToken tok = next_token(text, pos);
    pos += tok.text.size();
    const std::string token(tok.text);
    if (token.front() == '\\') {
      runs.push_back({token.substr(1), 1.0});
    } else if (token == "(") {
      round.push_back(runs.size());
    } else if (token == "[") {
      square.push_back(runs.size());
    } else if (tok.weight && !round.empty()) {
      multiply_from(round.back(), parse_weight(std::string(*tok.weight)));
      round.pop_back();
    } else if (token == ")" && !round.empty()) {
      multiply_from(round.back(), kRound);
      round.pop_back();
    } else if (token == "]" && !square.empty()) {
      multiply_from(square.back(), kSquare);
      square.pop_back();
    } else {
      runs.push_back({token, 1.0});
    }
  }
  // Unclosed brackets still weigh what follows them (in the order they were opened, as lpw multiplies).
  for (size_t start : round) multiply_from(start, kRound);
  for (size_t start : square) multiply_from(start, kSquare);
  if (runs.empty()) runs.push_back({"", 1.0});
  for (size_t i = 0; i + 1 < runs.size();) {
    if (runs[i].weight == runs[i + 1].weight) {
      runs[i].text += runs[i + 1].text;
      runs.erase(runs.begin() + std::ptrdiff_t(i) + 1);
    } else {
      ++i;
    }
  }
  return runs;
}

namespace {

// lpw's get_prompts_with_weights for one text: the tokens of each run (without bos/eos) and their weights,
// cut at max_tokens.
void tokens_with_weights(const ClipTokenizer& tokenizer, const std::string& text, size_t max_tokens,
                         std::vector<int64_t>& ids, std::vector<float>& weights, bool& truncated) {
  for (const WeightedRun& run : parse_prompt_attention(text)) {
    const std::vector<int64_t>& all = tokenizer.encode(run.text).untruncated_ids;
    ids.insert(ids.end(), all.begin() + 1, all.end() - 1);
    weights.insert(weights.end(), all.size() - 2, float(run.weight));
    if (ids.size() > max_tokens) break;
  }
  if (ids.size() > max_tokens) {
    truncated = true;
    ids.resize(max_tokens);
    weights.resize(max_tokens);
  }
}

// lpw's pad_tokens_and_weights (no_boseos_middle=False).
void pad(WeightedTokens& out, int64_t bos, int64_t eos, int64_t pad_id, int chunk_length) {
  const size_t body = size_t(chunk_length - 2);
  const size_t max_length = body * size_t(out.chunks) + 2;
  for (size_t i = 0; i < out.ids.size(); ++i) {
    std::vector<int64_t>& ids = out.ids[i];
    std::vector<float>& w = out.weights[i];
    std::vector<int64_t> padded = {bos};
    padded.insert(padded.end(), ids.begin(), ids.end());
    padded.resize(max_length - 1, pad_id);
    padded.push_back(eos);
    std::vector<float> chunked;
    if (!w.empty()) {
      for (size_t c = 0; c < size_t(out.chunks); ++c) {
        chunked.push_back(1.0f);
        const size_t from = std::min(w.size(), c * body), to = std::min(w.size(), (c + 1) * body);
        chunked.insert(chunked.end(), w.begin() + std::ptrdiff_t(from), w.begin() + std::ptrdiff_t(to));
        chunked.push_back(1.0f);
      }
    }
    chunked.resize(size_t(chunk_length) * size_t(out.chunks), 1.0f);
    ids = std::move(padded);
    w = std::move(chunked);
  }
}

}  // namespace

void weighted_tokens(const ClipTokenizer& tokenizer, const std::vector<std::string>& texts,
                     const std::vector<std::string>& uncond, WeightedTokens& cond_out, WeightedTokens& uncond_out,
                     int max_chunks) {
  const int chunk_length = tokenizer.model_max_length();
  const size_t body = size_t(chunk_length - 2);
  const size_t max_tokens = body * size_t(max_chunks);
  cond_out = {};
  uncond_out = {};
  size_t longest = 0;
  for (auto [list, out] : {std::pair{&texts, &cond_out}, std::pair{&uncond, &uncond_out}}) {
    for (const std::string& text : *list) {
      out->ids.emplace_back();
      out->weights.emplace_back();
      tokens_with_weights(tokenizer, text, max_tokens, out->ids.back(), out->weights.back(), out->truncated);
      longest = std::max(longest, out->ids.back().size());
    }
  }
  // Round the longest up to whole chunks: (longest - 1) / 75 + 1 (an empty text still takes one chunk).
  const int chunks = std::max(1, std::min(max_chunks, int((int64_t(longest) - 1) / int64_t(body)) + 1));
  for (WeightedTokens* out : {&cond_out, &uncond_out}) {
    out->chunks = chunks;
    pad(*out, tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id(), chunk_length);
  }
}

std::vector<int64_t> chunk_ids(const std::vector<int64_t>& ids, int c, int chunk_length, int64_t bos, int64_t eos) {
  const size_t from = size_t(c) * size_t(chunk_length - 2);
  KK_ASSERT(from + size_t(chunk_length) <= ids.size());
  std::vector<int64_t> chunk(ids.begin() + std::ptrdiff_t(from), ids.begin() + std::ptrdiff_t(from + size_t(chunk_length)));
  chunk.front() = bos;
  chunk.back() = eos;
  return chunk;
}

void apply_token_weights(float* hidden, int64_t texts, int64_t tokens, int64_t channels,
                         const std::vector<std::vector<float>>& weights) {
  KK_ASSERT(int64_t(weights.size()) == texts);
  const int64_t per_text = tokens * channels;
  auto mean_of = [&](const float* x) {
    double sum = 0;
    for (int64_t i = 0; i < per_text; ++i) sum += x[i];
    return float(sum / double(per_text));
  };
  for (int64_t t = 0; t < texts; ++t) {
    float* x = hidden + t * per_text;
    KK_ASSERT(int64_t(weights[size_t(t)].size()) == tokens);
    const float previous = mean_of(x);
    for (int64_t k = 0; k < tokens; ++k)
      for (int64_t c = 0; c < channels; ++c) x[k * channels + c] *= weights[size_t(t)][size_t(k)];
    const float current = mean_of(x);
    const float ratio = previous / current;
    for (int64_t i = 0; i < per_text; ++i) x[i] *= ratio;
  }
}

Tensor encode_weighted(Context& ctx, const ClipTokenizer& tokenizer, const ClipTextModel& text_encoder,
                       const WeightedTokens& tokens, int clip_skip) {
  const int64_t texts = int64_t(tokens.ids.size());
  const int64_t chunk_length = tokenizer.model_max_length();
  StagedTensor ids(ctx.backend, {texts * tokens.chunks, chunk_length}, DType::I64);
  int64_t* row = ids.host().i64();
  for (const std::vector<int64_t>& text_ids : tokens.ids)
    for (int c = 0; c < tokens.chunks; ++c, row += chunk_length) {
      const std::vector<int64_t> chunk = chunk_ids(text_ids, c, int(chunk_length), tokenizer.bos_id(), tokenizer.eos_id());
      std::copy(chunk.begin(), chunk.end(), row);
    }
  ids.upload();
  const Tensor hidden = text_encoder.forward(ctx, ids.on_backend(), clip_skip);
  // Rows n * chunks + c are text n's chunk c, so [texts * chunks, 77, D] is already [texts, chunks * 77, D].
  // The weighting is a host step on the prompt embeddings (a few hundred KB, once per generation): one copy
  // each way on a device backend, none on the host.
  const int64_t channels = hidden.dim(2);
  Tensor weighted = host_copy(ctx.backend, hidden.view());
  KK_CHECK(weighted.dtype() == DType::F32, "A1111 prompt weights need f32 text encoder states");
  weighted.reshape_({texts, tokens.chunks * chunk_length, channels});
  apply_token_weights(weighted.f32(), texts, tokens.chunks * chunk_length, channels, tokens.weights);
  if (ctx.backend.device().is_host()) return weighted;
  Tensor on_backend = ctx.backend.empty(weighted.shape(), weighted.dtype());
  ctx.backend.upload(weighted, on_backend);
  return on_backend;
}

}  // namespace kakusan
