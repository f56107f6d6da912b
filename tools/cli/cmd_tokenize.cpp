// kakusan tokenize --model DIR --prompt TEXT: the ids the pipeline would feed the text encoder, as JSON.
// Handy for checking how many of a prompt's tokens survive CLIP's 77-token window.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "command.h"
#include "tokenizer/clip_tokenizer.h"

namespace kakusan::cli {
namespace {

// A model folder (with tokenizer/) or a tokenizer folder itself.
std::filesystem::path tokenizer_dir(const std::filesystem::path& model) {
  if (std::filesystem::is_directory(model / "tokenizer")) return model / "tokenizer";
  return model;
}

int run_tokenize(const std::string& model, const std::string& prompt) {
  const ClipTokenizer tokenizer = ClipTokenizer::load(tokenizer_dir(model));
  const TokenizedPrompt encoded = tokenizer.encode(prompt);
  if (encoded.truncated()) {
    // diffusers' warning, with the part that was cut decoded back to text.
    const std::span<const int64_t> removed(encoded.untruncated_ids.begin() + tokenizer.model_max_length() - 1,
                                           encoded.untruncated_ids.end() - 1);
    std::fprintf(stderr,
                 "warning: the following part of your input was truncated because CLIP can only handle sequences up "
                 "to %d tokens: %s\n",
                 tokenizer.model_max_length(), tokenizer.decode(removed).c_str());
  }
  const nlohmann::ordered_json out = {
      {"input_ids", encoded.input_ids}, {"untruncated_ids", encoded.untruncated_ids}, {"tokens", encoded.tokens}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

const bool registered = register_command({
    "tokenize",
    "Print the CLIP token ids of a prompt as JSON",
    [](CLI::App& app) -> std::function<int()> {
      auto model = std::make_shared<std::string>();
      auto prompt = std::make_shared<std::string>();
      app.add_option("--model", *model, "Model folder (with tokenizer/) or a tokenizer folder")->required();
      app.add_option("--prompt", *prompt, "Text to tokenize")->required();
      return [model, prompt] { return run_tokenize(*model, *prompt); };
    },
});

}  // namespace
}  // namespace kakusan::cli
