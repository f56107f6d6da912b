#include "pipeline/lora_tags.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace kakusan {

namespace {

constexpr std::string_view kOpen = "<lora:";
constexpr size_t kMaxNameBytes = 200;  // a file name's stem, well under NAME_MAX with ".safetensors"

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// A name that stays inside the LoRA folder: no separators, no "..", nothing unprintable.
bool safe_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes || name.find("..") != std::string_view::npos) return false;
  for (const char c : name)
    if (c == '/' || c == '\\' || c == '<' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  return true;
}

// The tag text for messages: shortened, and control characters as '?', so that a hostile prompt can make
// neither a huge nor a multi-line error.
std::string shown(std::string_view tag) {
  std::string out(tag.substr(0, 80));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return tag.size() <= 80 ? out : out.substr(0, 77) + "...";
}

LoraTag parse_tag(std::string_view tag, std::string_view body) {
  const size_t colon = body.find(':');
  const std::string_view name = trim(body.substr(0, colon));
  KK_CHECK(safe_name(name), "prompt tag '", shown(tag),
           "': the LoRA name must be a file name in the LoRA folder (no '/', '\\', '..' or control characters)");
  LoraTag parsed{std::string(name), 1.0f};
  if (colon == std::string_view::npos) return parsed;
  const std::string weight(trim(body.substr(colon + 1)));
  KK_CHECK(weight.find(':') == std::string::npos && weight.find('=') == std::string::npos, "prompt tag '", shown(tag),
           "': kakusan reads <lora:NAME> and <lora:NAME:WEIGHT> (no separate text-encoder / UNet weights)");
  char* end = nullptr;
  errno = 0;
  const float value = std::strtof(weight.c_str(), &end);
  KK_CHECK(!weight.empty() && end == weight.c_str() + weight.size() && errno != ERANGE && std::isfinite(value),
           "prompt tag '", shown(tag), "': weight '", shown(weight), "' is not a finite number");
  parsed.weight = value;
  return parsed;
}

}  // namespace

TaggedPrompt parse_lora_tags(std::string_view prompt) {
  TaggedPrompt out;
  size_t pos = 0;
  while (true) {
    const size_t open = prompt.find(kOpen, pos);
    out.text.append(prompt.substr(pos, open == std::string_view::npos ? std::string_view::npos : open - pos));
    if (open == std::string_view::npos) break;
    const size_t close = prompt.find('>', open);
    KK_CHECK(close != std::string_view::npos, "prompt tag '", shown(prompt.substr(open)),
             "' is not closed by '>'");
    const std::string_view tag = prompt.substr(open, close + 1 - open);
    KK_CHECK(out.tags.size() < size_t(kMaxLoraTags), "the prompt has more than ", kMaxLoraTags, " <lora:...> tags");
    out.tags.push_back(parse_tag(tag, tag.substr(kOpen.size(), tag.size() - kOpen.size() - 1)));
    pos = close + 1;
  }
  return out;
}

std::filesystem::path resolve_lora_tag(const std::filesystem::path& dir, const std::string& name) {
  std::error_code error;
  const std::filesystem::path file = dir / (name + ".safetensors");
  KK_CHECK(std::filesystem::is_regular_file(file, error), "prompt tag '<lora:", shown(name),
           ">': no LoRA of that name in the LoRA folder (--lora-dir)");
  return file;
}

namespace {

// A prompt's tags in a canonical order, to compare the prompts of a batch.
std::vector<std::pair<std::string, float>> sorted_tags(const std::vector<LoraTag>& tags) {
  std::vector<std::pair<std::string, float>> out;
  for (const LoraTag& tag : tags) out.emplace_back(tag.name, tag.weight);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

PromptLoras take_lora_tags(const std::vector<std::string>& prompts, const std::vector<std::string>& negative_prompts,
                           const std::optional<std::filesystem::path>& lora_dir) {
  PromptLoras out;
  std::vector<LoraTag> first;
  for (size_t i = 0; i < prompts.size(); ++i) {
    TaggedPrompt tagged = parse_lora_tags(prompts[i]);
    if (i == 0) first = tagged.tags;
    KK_CHECK(sorted_tags(tagged.tags) == sorted_tags(first), "prompts 1 and ", i + 1,
             " carry different <lora:...> tags, but one generation applies one LoRA set to all its images: "
             "generate them separately");
    out.prompts.push_back(std::move(tagged.text));
  }
  for (const std::string& negative : negative_prompts) {
    TaggedPrompt tagged = parse_lora_tags(negative);
    if (!tagged.tags.empty())
      out.warnings.push_back(str_cat("the negative prompt's <lora:", shown(tagged.tags.front().name),
                                     "> tags are not applied (LoRAs come from the prompt only, as in A1111)"));
    out.negative_prompts.push_back(std::move(tagged.text));
  }
  if (first.empty()) return out;
  KK_CHECK(lora_dir, "the prompt has a <lora:", shown(first.front().name),
           "> tag but no LoRA folder was given (--lora-dir)");
  for (const LoraTag& tag : first) out.loras.push_back({resolve_lora_tag(*lora_dir, tag.name).string(), tag.weight});
  return out;
}

}  // namespace kakusan
