#include "pipeline_cases.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <iterator>
#include <regex>
#include <string_view>

#include "core/error.h"

namespace kakusan::testing {

namespace {

std::vector<uint64_t> parse_int_list(const std::string& text) {
  std::vector<uint64_t> values;
  const std::regex number(R"(\d+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), number); it != std::sregex_iterator(); ++it)
    values.push_back(std::stoull(it->str()));
  return values;
}

std::vector<std::string> strings_of(const nlohmann::json& value) {
  if (value.is_string()) return {value.get<std::string>()};
  return value.get<std::vector<std::string>>();
}

// manifest.json comes from Python's json module, which writes infinities and NaN as bare words that strict
// JSON (nlohmann) refuses. Outside strings they become null; these cases never read those fields.
std::string strict_json(const std::string& text) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const std::string_view word : {"-Infinity", "Infinity", "NaN"}) {
      if (text.compare(i, word.size(), word) == 0) {
        out += "null";
        i += word.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

Tolerance tolerance_of(const nlohmann::json& t) {
  return {t.value("atol", 0.0), t.value("rtol", 0.0)};
}

}  // namespace

void parse_generator(const std::string& text, GenerateParams& params) {
  std::smatch m;
  if (std::regex_match(text, m, std::regex(R"(torch\.Generator\('cpu'\)\.manual_seed\((\d+)\))"))) {
    params.seeds = {std::stoull(m[1])};  // one generator shared by the batch
  } else if (std::regex_match(text, m,
                              std::regex(R"(\[Generator\(\)\.manual_seed\(s\) for s in \[([\d, ]+)\]\])"))) {
    params.seeds = parse_int_list(m[1]);  // one generator per image
  } else if (std::regex_match(text, m, std::regex(R"(\[g\]\*(\d+), g = Generator\(\)\.manual_seed\((\d+)\))"))) {
    params.seeds = {std::stoull(m[2])};  // a list holding the same generator object n times
    params.generator_index.assign(std::stoull(m[1]), 0);
  } else {
    fail("unknown generator form in manifest: ", text);
  }
}

std::vector<PipelineCase> load_pipeline_cases() {
  std::vector<PipelineCase> cases;
  const auto golden = golden_dir();
  if (!golden) return cases;
  std::ifstream in(*golden / "manifest.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json manifest = nlohmann::json::parse(strict_json(text));
  for (const nlohmann::json& c : manifest["cases"]) {
    const std::string id = c["id"];
    if (id.rfind("pipe_", 0) != 0 || !c.contains("file")) continue;
    const nlohmann::json& p = c["params"];
    const nlohmann::json& call = p["call"];
    PipelineCase pc;
    pc.id = id;
    pc.name = id.substr(5);
    pc.file = *golden / c["file"].get<std::string>();
    pc.model = *golden / p["model"].get<std::string>();
    if (p.contains("vae")) pc.load.vae = (*golden / p["vae"].get<std::string>()).string();
    pc.load.scheduler = p["scheduler"];
    pc.load.num_threads = 0;

    GenerateParams& g = pc.params;
    g.prompt = strings_of(call["prompt"]);
    if (call.contains("negative_prompt")) g.negative_prompt = strings_of(call["negative_prompt"]);
    g.height = call.value("height", 0);
    g.width = call.value("width", 0);
    g.num_inference_steps = call.value("num_inference_steps", 50);
    g.guidance_scale = call.value("guidance_scale", 7.5);
    g.num_images_per_prompt = call.value("num_images_per_prompt", 1);
    if (call.contains("clip_skip")) g.clip_skip = call["clip_skip"].get<int>();
    parse_generator(p["generator"], g);
    for (const nlohmann::json& processor : p["attention_processors"])
      if (processor == "SlicedAttnProcessor") g.attention.mode = AttentionOptions::Mode::Sliced;

    for (const nlohmann::json& png : c["pngs"]) pc.pngs.push_back(*golden / png.get<std::string>());
    pc.latents_tolerance = tolerance_of(c["tolerance"]["latents"]);
    pc.image_tolerance = tolerance_of(c["tolerance"]["image"]);
    cases.push_back(std::move(pc));
  }
  return cases;
}

}  // namespace kakusan::testing
