// diffusers' ConfigMixin.from_config for schedulers: which keys of a source scheduler_config.json a target
// class takes, with what types and defaults, and how user options (key=value strings) override them.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/json_config.h"
#include "schedulers/scheduler.h"

namespace kakusan {

enum class ConfigType { Bool, Int, Float, String, OptionalFloat, OptionalString, FloatList, IntList, MustBeNull };

// One __init__ argument of a scheduler class: its name, type and default (as JSON; null = None).
struct ConfigKey {
  std::string name;
  ConfigType type;
  nlohmann::json default_value;
};

// The keys every class shares, in diffusers' order, with the defaults most classes use; a class's table
// starts from these and changes what differs.
ConfigKey key_num_train_timesteps();
ConfigKey key_beta_start(double value = 0.0001);
ConfigKey key_beta_end(double value = 0.02);
ConfigKey key_beta_schedule();
ConfigKey key_trained_betas();
// The leading keys of the exponential-integrator solvers (DPM-Solver multistep / singlestep, DEIS, UniPC),
// which diffusers declares alike: the training schedule, solver_order 2, prediction_type and thresholding.
std::vector<ConfigKey> solver_leading_keys();

// from_config semantics (diffusers v0.29.2 ConfigMixin.extract_init_dict):
//  * keys listed in the source's `_use_default_values` (and that list itself) are dropped;
//  * private keys ("_class_name", ...) are dropped;
//  * the class's own keys take the source's values, the rest keep the class's defaults;
//  * `options` override the class's keys (an option that is not one of them is an error);
//  * the other source keys stay in the config json for compatible classes, as diffusers keeps them.
// Then the typed fields are read from the class's keys. Errors name the class, the key and the value.
SchedulerConfig resolve_scheduler_config(const std::string& class_name, const std::vector<ConfigKey>& keys,
                                         const JsonConfig& source,
                                         const std::map<std::string, std::string>& options);

// Error unless `value` is one of `allowed` ("DDIMScheduler: timestep_spacing "foo" is not supported ...").
void check_choice(const std::string& class_name, const std::string& key, const std::string& value,
                  std::initializer_list<const char*> allowed);

}  // namespace kakusan
