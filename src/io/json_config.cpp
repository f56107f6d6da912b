#include "io/json_config.h"

#include <algorithm>
#include <cmath>
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

namespace {

// How deeply `text` nests arrays and objects (brackets inside strings do not count); stops counting past
// `limit`. Malformed text is left to the parser.
int nesting_depth(const std::string& text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) break;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

JsonConfig JsonConfig::parse(const std::string& text, const std::string& source) {
  // Checked before parsing: nlohmann's copy, comparison and dump() recurse once per level, so a config
  // nested 100,000 deep would overflow the stack wherever it is later copied or printed.
  KK_CHECK(nesting_depth(text, kMaxDepth) <= kMaxDepth, source, ": nested more than ", kMaxDepth,
           " levels deep (not a config file)");
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) fail(source, ": not valid JSON");
  if (!json.is_object()) fail(source, ": expected a JSON object at the top level");
  return JsonConfig(std::move(json), source);
}

std::vector<int> JsonConfig::get_int_or_list(const std::string& key, int fallback, size_t count) const {
  if (!has(key)) return std::vector<int>(count, fallback);
  const nlohmann::json& value = json_[key];
  if (!value.is_array()) return std::vector<int>(count, convert<int>(value, key));
  std::vector<int> list = convert<std::vector<int>>(value, key);
  KK_CHECK(list.size() == count, source_, ": \"", key, "\" has ", list.size(), " entries, expected ", count);
  return list;
}

int64_t JsonConfig::checked_integer(const nlohmann::json& value, const std::string& key, int64_t min,
                                    uint64_t max) const {
  max = std::min<uint64_t>(max, uint64_t(std::numeric_limits<int64_t>::max()));
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > max) type_error(value, key, str_cat("an integer in [", min, ", ", max, "]"));
    return int64_t(v);
  }
  if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v < min || (v >= 0 && uint64_t(v) > max))
      type_error(value, key, str_cat("an integer in [", min, ", ", max, "]"));
    return v;
  }
  if (value.is_number_float()) {
    // Compare in double before converting: casting an out-of-range double is undefined behaviour.
    const double v = value.get<double>();
    if (std::isfinite(v) && v == std::floor(v) && v >= double(min) && v <= double(max) &&
        v < 9223372036854775808.0)
      return int64_t(v);
  }
  type_error(value, key, str_cat("an integer in [", min, ", ", max, "]"));
}

void JsonConfig::type_error(const nlohmann::json& value, const std::string& key,
                            const std::string& expected) const {
  // Containers are described by their type only: dumping a hostile, deeply nested value would recurse
  // once per level and could take megabytes of message.
  std::string shown = value.is_structured()
                         ? str_cat("a JSON ", value.type_name())
                         : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
  fail(source_, ": key \"", key, "\" should be ", expected, ", got ", shown);
}

}  // namespace kakusan
