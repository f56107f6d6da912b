#include "schedulers/scheduler_config.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

namespace kakusan {

ConfigKey key_num_train_timesteps() { return {"num_train_timesteps", ConfigType::Int, 1000}; }
ConfigKey key_beta_start(double value) { return {"beta_start", ConfigType::Float, value}; }
ConfigKey key_beta_end(double value) { return {"beta_end", ConfigType::Float, value}; }
ConfigKey key_beta_schedule() { return {"beta_schedule", ConfigType::String, "linear"}; }
ConfigKey key_trained_betas() { return {"trained_betas", ConfigType::FloatList, nullptr}; }

std::vector<ConfigKey> solver_leading_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(),
          key_beta_end(),
          key_beta_schedule(),
          key_trained_betas(),
          {"solver_order", ConfigType::Int, 2},
          {"prediction_type", ConfigType::String, "epsilon"},
          {"thresholding", ConfigType::Bool, false},
          {"dynamic_thresholding_ratio", ConfigType::Float, 0.995},
          {"sample_max_value", ConfigType::Float, 1.0}};
}

namespace {

const char* type_name(ConfigType type) {
  switch (type) {
    case ConfigType::Bool: return "a boolean (true/false)";
    case ConfigType::Int: return "an integer";
    case ConfigType::Float: return "a number";
    case ConfigType::String: return "a string";
    case ConfigType::OptionalFloat: return "a number or none";
    case ConfigType::OptionalString: return "a string or none";
    case ConfigType::FloatList: return "a list of numbers or none";
    case ConfigType::IntList: return "a list of integers";
    case ConfigType::MustBeNull: return "none (other values are not supported)";
  }
  return "?";
}

bool json_has_type(const nlohmann::json& v, ConfigType type) {
  auto number_list = [&](bool integers) {
    if (!v.is_array()) return false;
    return std::all_of(v.begin(), v.end(), [&](const nlohmann::json& e) {
      if (!integers) return e.is_number();
      return e.is_number_integer() && e.get<int64_t>() >= INT32_MIN && e.get<int64_t>() <= INT32_MAX;
    });
  };
  switch (type) {
    case ConfigType::Bool: return v.is_boolean();
    case ConfigType::Int:
      return v.is_number_integer() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
    case ConfigType::Float: return v.is_number();
    case ConfigType::String: return v.is_string();
    case ConfigType::OptionalFloat: return v.is_null() || v.is_number();
    case ConfigType::OptionalString: return v.is_null() || v.is_string();
    case ConfigType::FloatList: return v.is_null() || number_list(false);
    case ConfigType::IntList: return number_list(true);
    case ConfigType::MustBeNull: return v.is_null();
  }
  return false;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::optional<double> parse_double(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return v;
}

std::optional<int64_t> parse_int(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  const long long v = std::strtoll(t.c_str(), &end, 10);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return int64_t(v);
}

// A user option ("key=value" text) as JSON of the key's type; nullopt if the text does not fit the type.
std::optional<nlohmann::json> parse_option(const std::string& text, ConfigType type) {
  const std::string t = lower(trim(text));
  const bool is_none = t == "none" || t == "null";
  auto parse_list = [&](bool integers) -> std::optional<nlohmann::json> {
    std::string body = trim(text);
    if (!body.empty() && body.front() == '[' && body.back() == ']') body = body.substr(1, body.size() - 2);
    nlohmann::json list = nlohmann::json::array();
    std::stringstream items(body);
    std::string item;
    while (std::getline(items, item, ',')) {
      if (trim(item).empty()) continue;
      if (integers) {
        auto v = parse_int(item);
        if (!v || *v < INT32_MIN || *v > INT32_MAX) return std::nullopt;
        list.push_back(*v);
      } else {
        auto v = parse_double(item);
        if (!v) return std::nullopt;
        list.push_back(*v);
      }
    }
    return list;
  };
  switch (type) {
    case ConfigType::Bool:
      if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
      if (t == "false" || t == "0" || t == "no" || t == "off") return false;
      return std::nullopt;
    case ConfigType::Int:
      if (auto v = parse_int(t); v && *v >= INT32_MIN && *v <= INT32_MAX) return *v;
      return std::nullopt;
    case ConfigType::Float:
      if (auto v = parse_double(t)) return *v;
      return std::nullopt;
    case ConfigType::String: return trim(text);
    case ConfigType::OptionalFloat:
      if (is_none) return nullptr;
      if (auto v = parse_double(t)) return *v;
      return std::nullopt;
    case ConfigType::OptionalString:
      if (is_none) return nullptr;
      return trim(text);
    case ConfigType::FloatList:
      if (is_none) return nullptr;
      return parse_list(false);
    case ConfigType::IntList: return parse_list(true);
    case ConfigType::MustBeNull:
      if (is_none) return nullptr;
      return std::nullopt;
  }
  return std::nullopt;
}

// Reads the class's own keys into the typed struct (all of them are present in `json`).
void read_fields(SchedulerConfig& c, const std::vector<ConfigKey>& keys) {
  const nlohmann::json& j = c.json;
  std::set<std::string> own;
  for (const ConfigKey& k : keys) own.insert(k.name);
  auto has = [&](const char* name) { return own.count(name) != 0; };
  auto get_bool = [&](const char* name, bool& field) { if (has(name)) field = j.at(name).get<bool>(); };
  auto get_int = [&](const char* name, int& field) { if (has(name)) field = j.at(name).get<int>(); };
  auto get_double = [&](const char* name, double& field) { if (has(name)) field = j.at(name).get<double>(); };
  auto get_string = [&](const char* name, std::string& field) {
    if (has(name)) field = j.at(name).is_null() ? "" : j.at(name).get<std::string>();
  };
  auto get_opt_double = [&](const char* name, std::optional<double>& field) {
    if (has(name) && !j.at(name).is_null()) field = j.at(name).get<double>();
  };
  get_int("num_train_timesteps", c.num_train_timesteps);
  get_double("beta_start", c.beta_start);
  get_double("beta_end", c.beta_end);
  get_string("beta_schedule", c.beta_schedule);
  if (has("trained_betas") && !j.at("trained_betas").is_null())
    c.trained_betas = j.at("trained_betas").get<std::vector<double>>();
  get_string("prediction_type", c.prediction_type);
  get_string("timestep_spacing", c.timestep_spacing);
  get_int("steps_offset", c.steps_offset);
  get_bool("rescale_betas_zero_snr", c.rescale_betas_zero_snr);
  get_bool("clip_sample", c.clip_sample);
  get_double("clip_sample_range", c.clip_sample_range);
  get_bool("thresholding", c.thresholding);
  get_double("dynamic_thresholding_ratio", c.dynamic_thresholding_ratio);
  get_double("sample_max_value", c.sample_max_value);
  get_bool("set_alpha_to_one", c.set_alpha_to_one);
  get_bool("skip_prk_steps", c.skip_prk_steps);
  get_string("variance_type", c.variance_type);
  get_bool("use_karras_sigmas", c.use_karras_sigmas);
  get_bool("use_lu_lambdas", c.use_lu_lambdas);
  get_string("interpolation_type", c.interpolation_type);
  get_opt_double("sigma_min", c.sigma_min);
  get_opt_double("sigma_max", c.sigma_max);
  get_string("timestep_type", c.timestep_type);
  get_string("final_sigmas_type", c.final_sigmas_type);
  get_int("solver_order", c.solver_order);
  get_string("algorithm_type", c.algorithm_type);
  get_string("solver_type", c.solver_type);
  get_bool("lower_order_final", c.lower_order_final);
  get_bool("euler_at_final", c.euler_at_final);
  if (has("lambda_min_clipped")) {
    // Saved configs write -inf as the non-JSON token -Infinity, which loaders may turn into a string.
    const nlohmann::json& v = j.at("lambda_min_clipped");
    c.lambda_min_clipped = v.is_number() ? v.get<double>() : -INFINITY;
  }
  get_bool("predict_x0", c.predict_x0);
  if (has("disable_corrector")) c.disable_corrector = j.at("disable_corrector").get<std::vector<int>>();
}

}  // namespace

void check_choice(const std::string& class_name, const std::string& key, const std::string& value,
                  std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (value == a) return;
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string("\"") + a + "\"";
  fail(class_name, ": ", key, " \"", value, "\" is not supported (expected one of ", list, ")");
}

SchedulerConfig resolve_scheduler_config(const std::string& class_name, const std::vector<ConfigKey>& keys,
                                         const JsonConfig& source,
                                         const std::map<std::string, std::string>& options) {
  // The source config minus the keys that were only defaults in the class that saved it.
  nlohmann::json src = source.json();
  std::set<std::string> used_defaults;
  if (src.contains("_use_default_values") && src["_use_default_values"].is_array())
    for (const auto& k : src["_use_default_values"])
      if (k.is_string()) used_defaults.insert(k.get<std::string>());

  SchedulerConfig config;
  config.class_name = class_name;
  config.json = nlohmann::json::object();
  std::set<std::string> own;
  for (const ConfigKey& key : keys) {
    own.insert(key.name);
    nlohmann::json value = key.default_value;
    if (src.contains(key.name) && !used_defaults.count(key.name)) {
      value = src[key.name];
      // -Infinity is written by Python's json; a loader without it sees a string.
      if (key.type == ConfigType::Float && value.is_string() && lower(value.get<std::string>()) == "-infinity")
        value = -INFINITY;
      KK_CHECK(json_has_type(value, key.type), source.source(), ": ", class_name, " config key \"", key.name,
               "\" must be ", type_name(key.type), ", got ", value.dump());
    }
    config.json[key.name] = value;
  }
  // Keys kept for compatible classes (diffusers' "hidden" config): present in the config, unused here.
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string& k = it.key();
    if (k.empty() || k[0] == '_' || own.count(k) || used_defaults.count(k)) continue;
    config.json[k] = it.value();
  }
  for (const auto& [name, text] : options) {
    // An init-capture: clang 14 cannot capture a structured binding.
    auto key = std::find_if(keys.begin(), keys.end(),
                            [&option = name](const ConfigKey& k) { return k.name == option; });
    if (key == keys.end()) {
      std::string known;
      for (const ConfigKey& k : keys) known += (known.empty() ? "" : ", ") + k.name;
      fail(class_name, ": unknown scheduler option \"", name, "\" (", class_name, " accepts: ", known, ")");
    }
    std::optional<nlohmann::json> value = parse_option(text, key->type);
    KK_CHECK(value.has_value(), class_name, ": scheduler option ", name, "=\"", text, "\" must be ",
             type_name(key->type));
    config.json[name] = *value;
  }
  read_fields(config, keys);
  return config;
}

}  // namespace kakusan
