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

}  // namespace kakusan
