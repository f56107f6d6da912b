// Fuzzes config parsing: JsonConfig::parse, every typed getter on every key, and every config reader built on
// it: model_index.json (ModelIndex) and the UNet / VAE / CLIP text encoder config.json structs
// (scheduler_config.json has its own target, fuzz_scheduler_config). A bad config must end in kakusan::Error
// naming the key; a crash, a sanitizer report (e.g. a double that does not fit an int), a huge allocation
// (run with -malloc_limit_mb) or any other exception type is a finding.
#include <cstdint>
#include <string>

#include "io/json_config.h"
#include "io/model_folder.h"
#include "models/unet_config.h"
#include "models/vae_config.h"
#if __has_include("models/clip_text_config.h")
#include "models/clip_text_config.h"
#define KK_FUZZ_CLIP_CONFIG 1
#endif

namespace {

using kakusan::JsonConfig;

// Runs one reader; a clean kakusan::Error is the expected outcome for a bad value.
template <typename Read>
void attempt(Read&& read) {
  try {
    read();
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

  attempt([&] { (void)kakusan::ModelIndex::parse(cfg); });
  attempt([&] { (void)kakusan::UNet2DConditionConfig::parse(cfg); });
  attempt([&] { (void)kakusan::AutoencoderKLConfig::parse(cfg); });
#ifdef KK_FUZZ_CLIP_CONFIG
  attempt([&] { (void)kakusan::ClipTextConfig::parse(cfg); });
#endif
  return 0;
}
