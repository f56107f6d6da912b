// Fuzzes config parsing: JsonConfig::parse and every typed getter on every key of whatever parses. A bad
// config must end in kakusan::Error naming the key; a crash, a sanitizer report (e.g. a double that does
// not fit an int) or any other exception type is a finding.
#include <cstdint>
#include <string>

#include "io/json_config.h"

namespace {

using kakusan::JsonConfig;

// Runs one getter; a clean kakusan::Error is the expected outcome for a value of the wrong type.
template <typename Get>
void attempt(Get&& get) {
  try {
    get();
  } catch (const kakusan::Error&) {
  }
}

void exercise_key(const JsonConfig& cfg, const std::string& key) {
  attempt([&] { (void)cfg.get<int>(key, 0); });
  attempt([&] { (void)cfg.get<int64_t>(key, 0); });
  attempt([&] { (void)cfg.get<float>(key, 0.f); });
  attempt([&] { (void)cfg.get<double>(key, 0.0); });
  attempt([&] { (void)cfg.get<bool>(key, false); });
  attempt([&] { (void)cfg.get<std::string>(key, ""); });
  attempt([&] { (void)cfg.require<int>(key); });
  attempt([&] { (void)cfg.get_list<int>(key, {}); });
  attempt([&] { (void)cfg.get_list<float>(key, {}); });
  attempt([&] { (void)cfg.get_list<std::string>(key, {}); });
  attempt([&] { (void)cfg.get_int_or_list(key, 1, 4); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  JsonConfig cfg;
  try {
    cfg = JsonConfig::parse(text, "fuzz/config.json");
  } catch (const kakusan::Error&) {
    return 0;
  }
  for (auto it = cfg.json().begin(); it != cfg.json().end(); ++it) exercise_key(cfg, it.key());
  exercise_key(cfg, "absent key");
  return 0;
}
