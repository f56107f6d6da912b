#include "pipeline_cases.h"

#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "support/golden_manifest.h"

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
  const auto golden = golden_dir();
  if (!golden) {
    PipelineCase placeholder;
    placeholder.name = "GoldenKitAbsent";
    return {placeholder};
  }
  std::vector<PipelineCase> cases;
  for (const std::string& id : golden_case_ids("pipe_")) {
    const nlohmann::json& c = golden_case(id);
    if (!c.contains("file")) continue;
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
    pc.latents_tolerance = golden_tolerance(id, "latents");
    pc.image_tolerance = golden_tolerance(id, "image");
    pc.text_encoder_tolerance = golden_tolerance("text_encoder_" + pc.model.filename().string());
    pc.rng_tolerance = golden_tolerance("rng");
    cases.push_back(std::move(pc));
  }
  return cases;
}

}  // namespace kakusan::testing
