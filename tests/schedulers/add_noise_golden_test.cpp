// Every scheduler's add_noise_at_step against diffusers' add_noise as img2img calls it (set_timesteps(10),
// set_begin_index(t_start * order) where the class has one, add_noise at timesteps[t_start * order]); the
// expected tensors come from tests/golden/img2img/make_goldens.py. Sigma schedulers then use
// sigmas[begin_index] (which differs from a timestep lookup where timesteps repeat, Heun / KDPM2).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/json_config.h"
#include "io/safetensors.h"
#include "schedulers/scheduler.h"
#include "support/golden.h"

namespace kakusan {
namespace {

TEST(AddNoiseGolden, EverySchedulerAtImg2ImgsBeginIndex) {
  KK_REQUIRE_GOLDEN();
  const auto dir = std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";
  const SafetensorsFile want = SafetensorsFile::open(dir / "add_noise.safetensors");
  const JsonConfig config = JsonConfig::load(*testing::golden_dir() / "tiny-sd" / "scheduler" / "scheduler_config.json");
  const char* classes[] = {"DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler",
                           "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
                           "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
                           "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "DEISMultistepScheduler",
                           "UniPCMultistepScheduler"};
  int checked = 0;
  for (const char* name : classes)
    for (const bool karras : {false, true}) {
      const std::string key = std::string(name) + (karras ? "_karras" : "");
      if (!want.contains(key + "_begin0")) continue;
      for (int t_start : {0, 3, 9}) {
        auto scheduler = make_scheduler(name, config, karras ? std::map<std::string, std::string>{{"use_karras_sigmas",
                                                                                                  "true"}}
                                                             : std::map<std::string, std::string>{});
        scheduler->set_timesteps(10);
        const size_t begin = size_t(t_start * scheduler->order());
        const std::string entry = key + "_begin" + std::to_string(begin);
        ASSERT_TRUE(want.contains(entry)) << entry;
        const Tensor got = scheduler->add_noise_at_step(want.view("original"), want.view("noise"), begin);
        KK_EXPECT_CLOSE(got, want.view(entry), testing::Tolerance{1e-5, 1e-5}, entry);
        ++checked;
      }
    }
  EXPECT_EQ(checked, 15 * 3);
}

}  // namespace
}  // namespace kakusan
