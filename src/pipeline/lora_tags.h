// A1111's extra-network prompt syntax for LoRAs, `<lora:NAME>` and `<lora:NAME:WEIGHT>` (weight 1.0 when
// absent), as AUTOMATIC1111 and stable-diffusion.cpp read it: the tags are taken out of the prompt text before
// it is tokenized, and NAME is the file NAME.safetensors in a LoRA folder (LoadOptions::lora_dir).
//
// The rules (kakusan's, where A1111 is silent or lenient):
//   - `<lora:` always opens a tag: a tag that is not closed by '>', has an empty or unsafe name (a path
//     separator, "..", a control character, '<') or a weight that is not a finite number is an error naming
//     it, never left in the text (the tokenizer would otherwise read "<lora:x:0.8" as words);
//   - A1111's per-part multipliers (`<lora:NAME:0.5:0.8>`, `te=` / `unet=`) are refused, not half-read;
//   - other `<...>` text (`<3`, `<hypernet:x>`) is ordinary prompt text;
//   - spaces around NAME and WEIGHT are ignored; one prompt holds at most kMaxLoraTags tags.
// The name is resolved by resolve_lora_tag(); it never reaches the file system unchecked, since server
// requests are untrusted.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kakusan/pipeline.h"

namespace kakusan {

struct LoraTag {
  std::string name;
  float weight = 1.0f;
};

struct TaggedPrompt {
  std::string text;           // the prompt with every tag removed (A1111 replaces a tag by nothing)
  std::vector<LoraTag> tags;  // in the order they appear
};

// More tags than any real prompt holds; each one costs a file lookup and a merge.
inline constexpr int kMaxLoraTags = 64;

// Throws Error("prompt tag '<lora:...>': <problem>") for a malformed tag.
TaggedPrompt parse_lora_tags(std::string_view prompt);

// DIR/NAME.safetensors for a tag's name (checked by parse_lora_tags). Throws a one-line Error that names the tag
// but not the folder or its contents (a server's client sees it) when the file does not exist.
std::filesystem::path resolve_lora_tag(const std::filesystem::path& dir, const std::string& name);

// A generation's prompts without their tags, and the LoRAs the tags name.
struct PromptLoras {
  std::vector<std::string> prompts, negative_prompts;
  std::vector<LoadOptions::Lora> loras;  // resolved in the LoRA folder, in the prompt's order
  std::vector<std::string> warnings;
};

// The LoRA set is one per generation, so every prompt of a batch must carry the same tags (in any order; a
// union or the first prompt's tags, as A1111 takes, would give a prompt a LoRA it did not ask for, and an image
// unlike the one it gets alone): otherwise an Error. Tags in negative prompts are removed and not applied, with
// a warning (A1111 applies extra networks from the prompt only). A tag without `lora_dir` is an Error.
PromptLoras take_lora_tags(const std::vector<std::string>& prompts, const std::vector<std::string>& negative_prompts,
                           const std::optional<std::filesystem::path>& lora_dir);

}  // namespace kakusan
