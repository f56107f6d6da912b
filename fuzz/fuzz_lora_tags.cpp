// Fuzzes A1111's <lora:NAME:W> prompt tags (pipeline/lora_tags.h), which read untrusted prompts (server
// requests) and turn names into file paths. The input is prompts separated by NUL bytes: the first is the
// batch's prompts' model, all go through parse_lora_tags, then take_lora_tags against a LoRA folder holding
// "a.safetensors". A bad tag must end in kakusan::Error; a crash, a sanitizer report, another exception type,
// or an accepted result that breaks the parser's promises is a finding:
//   the text left is the prompt minus the tags (never longer), at most kMaxLoraTags tags, every weight finite,
//   every name free of separators and "..", and every resolved file inside the LoRA folder.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "pipeline/lora_tags.h"

namespace {

namespace fs = std::filesystem;

void check(bool ok) {
  if (!ok) std::abort();
}

const fs::path& lora_dir() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("kakusan-fuzz-lora-" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::ofstream(d / "a.safetensors") << "not read by the tag parser";
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> prompts;
  for (size_t begin = 0;;) {
    const size_t nul = input.find('\0', begin);
    prompts.push_back(input.substr(begin, nul == std::string::npos ? std::string::npos : nul - begin));
    if (nul == std::string::npos) break;
    begin = nul + 1;
  }
  for (const std::string& prompt : prompts) {
    try {
      const kakusan::TaggedPrompt tagged = kakusan::parse_lora_tags(prompt);
      check(tagged.text.size() <= prompt.size() && tagged.tags.size() <= size_t(kakusan::kMaxLoraTags));
      for (const kakusan::LoraTag& tag : tagged.tags)
        check(std::isfinite(tag.weight) && !tag.name.empty() && tag.name.find('/') == std::string::npos &&
              tag.name.find("..") == std::string::npos);
    } catch (const kakusan::Error&) {
    }
  }
  try {
    const std::vector<std::string> negative(prompts.begin() + 1, prompts.end());
    const kakusan::PromptLoras loras = kakusan::take_lora_tags({prompts.front()}, negative, lora_dir());
    for (const kakusan::LoadOptions::Lora& lora : loras.loras)
      check(fs::path(lora.file).parent_path() == lora_dir() && std::isfinite(lora.scale));
  } catch (const kakusan::Error&) {
  }
  return 0;
}
