// Fuzzes the CLIP tokenizer, both of its inputs:
//   first byte even: the rest is a prompt, encoded (and its ids decoded) by a small synthetic tokenizer;
//   first byte odd:  the rest is a tokenizer folder - vocab.json, merges.txt, tokenizer_config.json and
//                    special_tokens_map.json separated by NUL bytes - loaded, then used on a fixed prompt.
// A bad prompt (e.g. not UTF-8) or a bad file must end in kakusan::Error; a crash, a sanitizer report, a
// huge allocation (run with -malloc_limit_mb), a hang or another exception type is a finding.
//
// The synthetic vocabulary (the 256 byte symbols, their "</w>" forms, a few merges) is generated here; no
// real vocabulary is used or checked in.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/clip_tokenizer.h"

namespace {

namespace fs = std::filesystem;
using kakusan::ClipTokenizer;

std::string utf8(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
  return out;
}

fs::path scratch_dir(const std::string& name) {
  const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  const fs::path dir = base / ("kakusan-fuzz-tokenizer-" + std::to_string(::getpid())) / name;
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// GPT-2's byte alphabet, the "</w>" forms, merges building a few English words, and CLIP's two specials.
const ClipTokenizer& synthetic_tokenizer() {
  static const ClipTokenizer tokenizer = [] {
    nlohmann::json vocab = nlohmann::json::object();
    int64_t next_id = 0;
    char32_t extra = 256;
    std::vector<std::string> symbols;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      symbols.push_back(utf8(printable ? char32_t(b) : extra++));
    }
    for (const std::string& s : symbols) vocab[s] = next_id++;
    for (const std::string& s : symbols) vocab[s + "</w>"] = next_id++;
    std::string merges = "#version: 0.2\n";
    for (const char* pair : {"t h", "th e</w>", "c a", "ca t</w>", "o f</w>", "a </w>", "p h", "ph o", "t o</w>",
                             "pho to</w>", "i n", "in g</w>"}) {
      merges += std::string(pair) + "\n";
      std::string merged(pair);
      merged.erase(merged.find(' '), 1);
      if (!vocab.contains(merged)) vocab[merged] = next_id++;
    }
    vocab["<|startoftext|>"] = next_id++;
    vocab["<|endoftext|>"] = next_id++;
    const fs::path dir = scratch_dir("synthetic");
    write(dir / "vocab.json", vocab.dump());
    write(dir / "merges.txt", merges);
    write(dir / "tokenizer_config.json", R"({"model_max_length": 77, "do_lower_case": true})");
    return ClipTokenizer::load(dir);
  }();
  return tokenizer;
}

void use(const ClipTokenizer& tokenizer, std::string_view prompt) {
  try {
    const kakusan::TokenizedPrompt p = tokenizer.encode(prompt);
    if (p.input_ids.size() != size_t(tokenizer.model_max_length())) std::abort();
    (void)tokenizer.decode(p.untruncated_ids);
  } catch (const kakusan::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    const ClipTokenizer& tokenizer = synthetic_tokenizer();
    use(tokenizer, rest);
    // Ids from the bytes themselves: decode must refuse unknown ids cleanly.
    std::vector<int64_t> ids;
    for (size_t i = 0; i + 2 <= rest.size() && ids.size() < 64; i += 2)
      ids.push_back(int64_t(int16_t(uint16_t(uint8_t(rest[i])) | uint16_t(uint8_t(rest[i + 1])) << 8)));
    try {
      (void)tokenizer.decode(ids);
    } catch (const kakusan::Error&) {
    }
    return 0;
  }

  static const fs::path dir = scratch_dir("files");
  const char* const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
  size_t begin = 0;
  for (const char* name : names) {
    std::error_code ignored;
    fs::remove(dir / name, ignored);
    if (begin > rest.size()) continue;  // fewer parts: the optional files are absent
    size_t end = rest.find('\0', begin);
    if (end == std::string::npos) end = rest.size();
    write(dir / name, rest.substr(begin, end - begin));
    begin = end + 1;
  }
  try {
    const ClipTokenizer tokenizer = ClipTokenizer::load(dir);
    use(tokenizer, "a photo of a cat, <|endoftext|> 123 \xC3\xA9t\xC3\xA9 !!");
  } catch (const kakusan::Error&) {
  }
  return 0;
}
