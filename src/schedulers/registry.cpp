// make_scheduler: class names, A1111 / stable-diffusion.cpp aliases, and from_config.
#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "schedulers/scheduler_classes.h"

namespace kakusan {

const std::vector<SchedulerClass>& scheduler_classes() {
  static const std::vector<SchedulerClass> classes = {
      {"DDIMScheduler", ddim_config_keys, make_ddim},
      {"DDPMScheduler", ddpm_config_keys, make_ddpm},
      {"PNDMScheduler", pndm_config_keys, make_pndm},
      {"LMSDiscreteScheduler", lms_config_keys, make_lms},
      {"EulerDiscreteScheduler", euler_config_keys, make_euler},
      {"HeunDiscreteScheduler", heun_config_keys, make_heun},
      {"EulerAncestralDiscreteScheduler", euler_ancestral_config_keys, make_euler_ancestral},
      {"DPMSolverMultistepScheduler", dpm_multistep_config_keys, make_dpm_multistep},
      {"DPMSolverSinglestepScheduler", dpm_singlestep_config_keys, make_dpm_singlestep},
      {"KDPM2DiscreteScheduler", kdpm2_config_keys, make_kdpm2},
      {"KDPM2AncestralDiscreteScheduler", kdpm2_ancestral_config_keys, make_kdpm2_ancestral},
      {"DEISMultistepScheduler", deis_config_keys, make_deis},
      {"UniPCMultistepScheduler", unipc_config_keys, make_unipc},
      {"LCMScheduler", lcm_config_keys, make_lcm},
  };
  return classes;
}

std::vector<SchedulerAlias> scheduler_aliases() {
  const std::map<std::string, std::string> karras = {{"use_karras_sigmas", "true"}};
  const std::map<std::string, std::string> sde = {{"algorithm_type", "sde-dpmsolver++"}};
  const std::map<std::string, std::string> sde_karras = {{"algorithm_type", "sde-dpmsolver++"},
                                                         {"use_karras_sigmas", "true"}};
  std::vector<SchedulerAlias> aliases;
  for (const SchedulerClass& c : scheduler_classes()) aliases.push_back({c.name, c.name, {}});
  const std::vector<SchedulerAlias> named = {
      {"euler", "EulerDiscreteScheduler", {}},
      {"euler_karras", "EulerDiscreteScheduler", karras},
      {"euler_a", "EulerAncestralDiscreteScheduler", {}},
      {"Euler a", "EulerAncestralDiscreteScheduler", {}},
      {"euler_ancestral", "EulerAncestralDiscreteScheduler", {}},
      {"heun", "HeunDiscreteScheduler", {}},
      {"heun_karras", "HeunDiscreteScheduler", karras},
      {"dpm2", "KDPM2DiscreteScheduler", {}},
      {"DPM2 Karras", "KDPM2DiscreteScheduler", karras},
      {"dpm2_a", "KDPM2AncestralDiscreteScheduler", {}},
      {"DPM2 a", "KDPM2AncestralDiscreteScheduler", {}},
      {"DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", karras},
      {"lms", "LMSDiscreteScheduler", {}},
      {"LMS Karras", "LMSDiscreteScheduler", karras},
      {"ddim", "DDIMScheduler", {}},
      {"ddpm", "DDPMScheduler", {}},
      {"pndm", "PNDMScheduler", {}},
      {"plms", "PNDMScheduler", {{"skip_prk_steps", "true"}}},
      {"dpm++2m", "DPMSolverMultistepScheduler", {}},
      {"DPM++ 2M", "DPMSolverMultistepScheduler", {}},
      {"dpm++2m_karras", "DPMSolverMultistepScheduler", karras},
      {"DPM++ 2M Karras", "DPMSolverMultistepScheduler", karras},
      {"dpm++2m_sde", "DPMSolverMultistepScheduler", sde},
      {"DPM++ 2M SDE", "DPMSolverMultistepScheduler", sde},
      {"dpm++2m_sde_karras", "DPMSolverMultistepScheduler", sde_karras},
      {"DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", sde_karras},
      {"dpm++2s", "DPMSolverSinglestepScheduler", {}},
      {"DPM++ 2S", "DPMSolverSinglestepScheduler", {}},
      {"dpm++2s_karras", "DPMSolverSinglestepScheduler", karras},
      {"unipc", "UniPCMultistepScheduler", {}},
      {"UniPC", "UniPCMultistepScheduler", {}},
      {"deis", "DEISMultistepScheduler", {}},
      {"k_euler", "EulerDiscreteScheduler", {}},
      {"k_euler_a", "EulerAncestralDiscreteScheduler", {}},
      {"k_heun", "HeunDiscreteScheduler", {}},
      {"k_lms", "LMSDiscreteScheduler", {}},
      {"k_dpm_2", "KDPM2DiscreteScheduler", {}},
      {"k_dpm_2_a", "KDPM2AncestralDiscreteScheduler", {}},
      {"lcm", "LCMScheduler", {}},
  };
  aliases.insert(aliases.end(), named.begin(), named.end());
  return aliases;
}

namespace {

// Case, spaces, '_' and '-' are ignored: "DPM++ 2M Karras" == "dpm++2m_karras".
std::string normalize(const std::string& name) {
  std::string out;
  for (char c : name)
    if (c != ' ' && c != '_' && c != '-') out += char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::unique_ptr<Scheduler> make_scheduler(const std::string& class_name_or_alias, const JsonConfig& source_config,
                                          const std::map<std::string, std::string>& options) {
  const std::string wanted = normalize(class_name_or_alias);
  std::optional<SchedulerAlias> found;
  for (const SchedulerAlias& a : scheduler_aliases())
    if (normalize(a.alias) == wanted) {
      found = a;
      break;
    }
  if (!found) {
    std::string names;
    for (const SchedulerClass& c : scheduler_classes()) names += std::string(names.empty() ? "" : ", ") + c.name;
    fail("unknown scheduler \"", class_name_or_alias, "\" (known classes: ", names,
         "; `kakusan scheduler --list` shows every alias)");
  }
  const SchedulerClass& cls = *std::find_if(scheduler_classes().begin(), scheduler_classes().end(),
                                            [&](const SchedulerClass& c) { return found->class_name == c.name; });
  std::map<std::string, std::string> merged = found->options;
  for (const auto& [k, v] : options) merged[k] = v;  // the user's options win over the alias's
  // DDIM's eta is a step argument in diffusers, not a config key; accept it as an option of DDIM.
  std::optional<double> eta;
  if (auto it = merged.find("eta"); it != merged.end() && std::string(cls.name) == "DDIMScheduler") {
    char* end = nullptr;
    const double v = std::strtod(it->second.c_str(), &end);
    KK_CHECK(!it->second.empty() && end == it->second.c_str() + it->second.size() && v >= 0, cls.name,
             ": scheduler option eta=\"", it->second, "\" must be a number >= 0");
    eta = v;
    merged.erase(it);
  }
  SchedulerConfig config = resolve_scheduler_config(cls.name, cls.config_keys(), source_config, merged);
  std::unique_ptr<Scheduler> scheduler = cls.create(std::move(config));
  if (eta) scheduler->set_eta(*eta);
  return scheduler;
}

}  // namespace kakusan
