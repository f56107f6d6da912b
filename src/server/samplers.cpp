#include "server/samplers.h"

namespace kakusan::server {

const std::vector<Sampler>& a1111_samplers() {
  // Only the samplers kakusan has a scheduler for; each name is also a scheduler alias.
  static const std::vector<Sampler> samplers = {
      {"DPM++ 2M Karras", {"k_dpmpp_2m_ka"}},
      {"DPM++ 2M SDE Karras", {"k_dpmpp_2m_sde_ka"}},
      {"DPM++ 2M", {"k_dpmpp_2m"}},
      {"DPM++ 2M SDE", {"k_dpmpp_2m_sde"}},
      {"DPM++ 2S", {}},
      {"Euler a", {"k_euler_a"}},
      {"Euler", {"k_euler"}},
      {"LMS", {"k_lms"}},
      {"LMS Karras", {"k_lms_ka"}},
      {"Heun", {"k_heun"}},
      {"DPM2", {"k_dpm_2"}},
      {"DPM2 Karras", {"k_dpm_2_ka"}},
      {"DPM2 a", {"k_dpm_2_a"}},
      {"DPM2 a Karras", {"k_dpm_2_a_ka"}},
      {"DDIM", {}},
      {"PLMS", {}},
      {"UniPC", {}},
      {"DEIS", {}},
  };
  return samplers;
}

std::optional<std::string> scheduler_for_sampler(const std::string& name) {
  for (const Sampler& s : a1111_samplers()) {
    if (s.name == name) return s.name;
    for (const std::string& alias : s.aliases)
      if (alias == name) return s.name;
  }
  return std::nullopt;
}

}  // namespace kakusan::server
