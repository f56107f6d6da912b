#include "pipeline/textual_inversion.h"

#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/clip_text_config.h"

namespace kakusan {

namespace {

constexpr const char* kTokenEmbedding = "text_model.embeddings.token_embedding.weight";

// Another source's tensors with one replaced by an owned tensor of another shape (the grown embedding).
class GrownTensorSource : public WeightSource {
 public:
  GrownTensorSource(std::shared_ptr<const WeightSource> base, std::string name, Tensor tensor, std::string stored_as)
      : base_(std::move(base)), name_(std::move(name)), tensor_(std::make_shared<const Tensor>(std::move(tensor))),
        stored_as_(std::move(stored_as)) {}
  std::optional<WeightRef> get(const std::string& name) const override {
    if (name != name_) return base_->get(name);
    return WeightRef{tensor_->view(), tensor_, false, base_->describe(), stored_as_};
  }
  std::vector<std::string> names() const override { return base_->names(); }
  std::vector<std::shared_ptr<const MappedFile>> mapped_files() const override { return base_->mapped_files(); }
  std::string describe() const override { return base_->describe(); }

 private:
  std::shared_ptr<const WeightSource> base_;
  std::string name_;
  std::shared_ptr<const Tensor> tensor_;
  std::string stored_as_;
};

}  // namespace

TextualInversion read_textual_inversion(const std::filesystem::path& path, const std::optional<std::string>& token) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  const std::string where = path.string();
  std::string name, default_token;
  if (file.contains("emb_params")) {
    name = "emb_params";
    default_token = path.stem().string();
  } else {
    KK_CHECK(file.entries().size() == 1, where, ": not a textual-inversion embedding (expected one tensor {token: "
             "vectors} or A1111's emb_params; found ", file.entries().size(), " tensors)");
    name = default_token = file.entries()[0].name;
  }
  Tensor vectors = file.load_f32(name);
  KK_CHECK(vectors.rank() == 1 || vectors.rank() == 2, where, ": '", name, "' is ", vectors.shape().str(),
           ", expected [D] or [n, D] vectors");
  if (vectors.rank() == 1) vectors.reshape_(Shape{1, vectors.dim(0)});
  KK_CHECK(vectors.dim(0) >= 1 && vectors.dim(0) <= 75, where, ": '", name, "' has ", vectors.dim(0),
           " vectors (1 to 75 fit a prompt)");
  for (int64_t i = 0; i < vectors.numel(); ++i)
    KK_CHECK(std::isfinite(vectors.f32()[i]), where, ": '", name, "' holds a non-finite value");
  return {token.value_or(default_token), std::move(vectors), where};
}

std::vector<std::pair<std::string, std::string>> add_textual_inversions(const std::vector<TextualInversion>& embeddings,
                                                                        ClipTokenizer& tokenizer,
                                                                        ComponentSource& text_encoder) {
  if (embeddings.empty()) return {};
  const ClipTextConfig config = ClipTextConfig::parse(text_encoder.config);
  const std::optional<WeightRef> table = text_encoder.weights->get(kTokenEmbedding);
  KK_CHECK(table && table->view.rank() == 2 && table->view.shape[0] == config.vocab_size &&
               table->view.shape[1] == config.hidden_size,
           text_encoder.weights->describe(), ": no token embedding [", config.vocab_size, ", ", config.hidden_size,
           "] to add textual-inversion vectors to");
  std::vector<std::pair<std::string, std::string>> expansions;
  int64_t rows = config.vocab_size;
  for (const TextualInversion& e : embeddings) {
    KK_CHECK(e.vectors.dim(1) == config.hidden_size, e.file, ": vectors of width ", e.vectors.dim(1),
             " do not fit this text encoder (hidden size ", config.hidden_size, "): an embedding for another model?");
    std::string expansion;
    for (int64_t i = 0; i < e.vectors.dim(0); ++i) {
      const std::string token = i == 0 ? e.token : str_cat(e.token, "_", i);
      const int64_t id = tokenizer.add_token(token);
      KK_CHECK(id == rows, e.file, ": token '", token, "' got id ", id, " but the text encoder has ", rows, " rows");
      ++rows;
      expansion += (i ? " " : "") + token;
    }
    if (e.vectors.dim(0) > 1) expansions.emplace_back(e.token, expansion);
  }
  const DType dtype = table->view.dtype;
  Tensor grown = Tensor::empty(Shape{rows, config.hidden_size}, dtype);
  convert_into(table->view, grown.view().narrow(0, 0, config.vocab_size));
  int64_t at = config.vocab_size;
  for (const TextualInversion& e : embeddings) {
    convert_into(e.vectors.view(), grown.view().narrow(0, at, e.vectors.dim(0)));
    at += e.vectors.dim(0);
  }
  nlohmann::json json = text_encoder.config.json();
  json["vocab_size"] = rows;
  text_encoder.config = JsonConfig(std::move(json), text_encoder.config.source() + " (+ textual inversion)");
  text_encoder.weights = std::make_shared<GrownTensorSource>(
      text_encoder.weights, kTokenEmbedding, std::move(grown),
      str_cat("the token embedding with ", rows - config.vocab_size, " textual-inversion rows"));
  return expansions;
}

}  // namespace kakusan
