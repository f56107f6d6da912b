// JsonConfig: a parsed config.json / scheduler_config.json with typed getters whose errors name the file
// and the key. Model config structs read their fields through it with diffusers' defaults:
//   cfg.get<int>("layers_per_block", 2), cfg.get_list<int>("block_out_channels", {320, 640, 1280, 1280}).
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace kakusan {

class JsonConfig {
 public:
  JsonConfig() = default;
  JsonConfig(nlohmann::json json, std::string source) : json_(std::move(json)), source_(std::move(source)) {}

  // Deepest nesting of arrays and objects accepted (diffusers and transformers configs use 3 or 4).
  static constexpr int kMaxDepth = 64;

  // Reads and parses a JSON object file; throws Error naming the file on any problem.
  static JsonConfig load(const std::filesystem::path& path);
  static JsonConfig parse(const std::string& text, const std::string& source);

  const nlohmann::json& json() const { return json_; }
  const std::string& source() const { return source_; }
  // True if the key is present and not null.
  bool has(const std::string& key) const { return json_.contains(key) && !json_[key].is_null(); }

  template <typename T>
  T get(const std::string& key, const T& fallback) const {
    return has(key) ? convert<T>(json_[key], key) : fallback;
  }
  template <typename T>
  T require(const std::string& key) const {
    KK_CHECK(has(key), source_, ": missing required key \"", key, "\"");
    return convert<T>(json_[key], key);
  }
  template <typename T>
  std::vector<T> get_list(const std::string& key, const std::vector<T>& fallback) const {
    return has(key) ? convert<std::vector<T>>(json_[key], key) : fallback;
  }
  // A value that may be a single number or a per-block list (e.g. attention_head_dim): expands a scalar
  // to `count` copies; a list must have exactly `count` entries.
  std::vector<int> get_int_or_list(const std::string& key, int fallback, size_t count) const;

 private:
  // Converts with checks nlohmann's get<T>() leaves out: a number must fit the target type exactly (1e300 or
  // 2.5 is not an int; casting would be undefined behaviour or silent truncation), and lists are converted
  // element by element so the message can name the bad entry.
  template <typename T>
  T convert(const nlohmann::json& value, const std::string& key) const {
    if constexpr (is_vector<T>::value) {
      if (!value.is_array()) type_error(value, key, "a list");
      T out;
      out.reserve(value.size());
      for (size_t i = 0; i < value.size(); ++i)
        out.push_back(convert<typename T::value_type>(value[i], str_cat(key, "[", i, "]")));
      return out;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!value.is_boolean()) type_error(value, key, "true or false");
      return value.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      return T(checked_integer(value, key, int64_t(std::numeric_limits<T>::min()),
                               uint64_t(std::numeric_limits<T>::max())));
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!value.is_number()) type_error(value, key, "a number");
      const double v = value.get<double>();
      if (std::abs(v) > double(std::numeric_limits<T>::max())) type_error(value, key, "a number in range");
      return T(v);
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!value.is_string()) type_error(value, key, "a string");
      return value.get<std::string>();
    } else {
      try {
        return value.get<T>();
      } catch (const nlohmann::json::exception&) {
        type_error(value, key, "another type");
      }
    }
  }

  template <typename T>
  struct is_vector : std::false_type {};
  template <typename T>
  struct is_vector<std::vector<T>> : std::true_type {};

  // An integer value in [min, max] (a float with an integral value is accepted: 64.0).
  int64_t checked_integer(const nlohmann::json& value, const std::string& key, int64_t min, uint64_t max) const;
  [[noreturn]] void type_error(const nlohmann::json& value, const std::string& key,
                                const std::string& expected) const;

  nlohmann::json json_ = nlohmann::json::object();
  std::string source_;
};

}  // namespace kakusan
