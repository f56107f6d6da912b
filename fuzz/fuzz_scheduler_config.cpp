// Fuzzes scheduler_config.json: make_scheduler() (diffusers' XScheduler.from_config) for every class, then
// set_timesteps() and the tables it builds. A bad config must end in kakusan::Error; a crash, a sanitizer
// report, a huge allocation (run with -malloc_limit_mb) or another exception type is a finding.
#include <cstdint>
#include <iterator>
#include <string>

#include "io/json_config.h"
#include "schedulers/scheduler.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* const kClasses[] = {
      "DDIMScheduler",          "DDPMScheduler",           "PNDMScheduler",
      "LMSDiscreteScheduler",   "EulerDiscreteScheduler",  "EulerAncestralDiscreteScheduler",
      "HeunDiscreteScheduler",  "KDPM2DiscreteScheduler",  "KDPM2AncestralDiscreteScheduler",
      "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "DEISMultistepScheduler",
      "UniPCMultistepScheduler"};
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const kakusan::JsonConfig cfg = kakusan::JsonConfig::parse(text, "fuzz/scheduler_config.json");
    // The class comes from the config when it names one (as from_pretrained does), else from the input's
    // length, so every class sees every config shape.
    std::string name = kClasses[size % std::size(kClasses)];
    if (cfg.json().contains("_class_name") && cfg.json()["_class_name"].is_string())
      name = cfg.json()["_class_name"].get<std::string>();
    auto scheduler = kakusan::make_scheduler(name, cfg);
    scheduler->set_timesteps(int(1 + size % 50));
    (void)scheduler->init_noise_sigma();
    (void)scheduler->sigmas();
  } catch (const kakusan::Error&) {
  }
  return 0;
}
