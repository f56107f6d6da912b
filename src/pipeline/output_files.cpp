#include "pipeline/output_files.h"

#include <charconv>

#include "core/error.h"

namespace kakusan {

namespace {

std::filesystem::path with_suffix(const std::filesystem::path& output, const std::string& suffix) {
  const std::string extension = output.has_extension() ? output.extension().string() : ".png";
  std::filesystem::path result = output;
  result.replace_filename(output.stem().string() + suffix + extension);
  return result;
}

}  // namespace

std::filesystem::path image_output_path(const std::filesystem::path& output, int index) {
  std::string suffix;
  if (index != 0) suffix = str_cat('-', index);
  return with_suffix(output, suffix);
}

std::filesystem::path grid_output_path(const std::filesystem::path& output) { return with_suffix(output, "-grid"); }

GridSpec parse_grid_spec(const std::string& text) {
  GridSpec spec;
  const size_t x = text.find_first_of("xX");
  auto parse = [&](std::string_view digits, int& value) {
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return ec == std::errc() && end == digits.data() + digits.size() && value >= 1 && value <= 1024;
  };
  const std::string_view view(text);
  const bool ok = x != std::string::npos && parse(view.substr(0, x), spec.rows) && parse(view.substr(x + 1), spec.cols);
  KK_CHECK(ok, "--grid \"", text, "\" is not ROWSxCOLS with positive numbers (e.g. 2x2)");
  return spec;
}

std::string model_display_name(const std::string& model) {
  std::string name = model;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  if (std::filesystem::is_directory(model)) return std::filesystem::path(name).filename().string();
  return name;
}

PngText image_parameters(const GenerateParams& params, const GenerateResult& result, size_t i,
                         const std::string& sampler, const std::string& model, WeightDType dtype) {
  auto nth_or_empty = [](const std::vector<std::string>& items, size_t k) -> std::string {
    if (items.empty()) return "";
    return items.size() == 1 ? items[0] : items.at(k);
  };
  GenerationInfo info;
  const size_t prompt_index = i / size_t(params.num_images_per_prompt);
  info.prompt = params.prompt.at(prompt_index);
  if (params.guidance_scale > 1.0) info.negative_prompt = nth_or_empty(params.negative_prompt, prompt_index);
  info.steps = params.num_inference_steps;
  info.sampler = sampler;
  info.cfg_scale = params.guidance_scale;
  info.seed = result.seeds.at(i);
  info.height = int(result.image_shape.at(1));
  info.width = int(result.image_shape.at(2));
  info.model = model;
  if (!params.image.empty()) {
    // A1111's "Denoising strength: 0.75": the shortest decimal that reads back, like Python's str().
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof buf, effective_strength(params)).ptr;
    std::string strength(buf, end);
    if (strength.find_first_of(".e") == std::string::npos) strength += ".0";
    info.extra.emplace_back("Denoising strength", strength);
  }
  if (params.generator_device == "cuda") info.extra.emplace_back("RNG", "NV");
  if (dtype == WeightDType::F16 || dtype == WeightDType::BF16)
    info.extra.emplace_back("Dtype", dtype == WeightDType::F16 ? "fp16" : "bf16");
  return PngText{{"parameters", format_parameters(info)}};
}

}  // namespace kakusan
