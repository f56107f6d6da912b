#include "io/json_config.h"

#include <fstream>
#include <sstream>

namespace kakusan {

JsonConfig JsonConfig::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open (does the file exist?)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path.string());
}

JsonConfig JsonConfig::parse(const std::string& text, const std::string& source) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) fail(source, ": not valid JSON");
  if (!json.is_object()) fail(source, ": expected a JSON object at the top level");
  return JsonConfig(std::move(json), source);
}

std::vector<int> JsonConfig::get_int_or_list(const std::string& key, int fallback, size_t count) const {
  if (!has(key)) return std::vector<int>(count, fallback);
  const nlohmann::json& value = json_[key];
  if (value.is_number_integer()) return std::vector<int>(count, value.get<int>());
  std::vector<int> list = convert<std::vector<int>>(value, key);
  KK_CHECK(list.size() == count, source_, ": \"", key, "\" has ", list.size(), " entries, expected ", count);
  return list;
}

}  // namespace kakusan
