// JsonConfig: a parsed config.json / scheduler_config.json with typed getters whose errors name the file
// and the key. Model config structs read their fields through it with diffusers' defaults:
//   cfg.get<int>("layers_per_block", 2), cfg.get_list<int>("block_out_channels", {320, 640, 1280, 1280}).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace kakusan {

class JsonConfig {
 public:
  JsonConfig() = default;
  JsonConfig(nlohmann::json json, std::string source) : json_(std::move(json)), source_(std::move(source)) {}

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
  template <typename T>
  T convert(const nlohmann::json& value, const std::string& key) const {
    try {
      return value.get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(source_, ": key \"", key, "\" has an unexpected type (value ", value.dump(), ")");
    }
  }

  nlohmann::json json_ = nlohmann::json::object();
  std::string source_;
};

}  // namespace kakusan
