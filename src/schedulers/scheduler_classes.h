// The scheduler classes, each defined in its own file, and the table make_scheduler() looks them up in.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "schedulers/scheduler.h"
#include "schedulers/scheduler_config.h"

namespace kakusan {

struct SchedulerClass {
  const char* name;                                          // the diffusers class name
  std::vector<ConfigKey> (*config_keys)();                   // its __init__ arguments and defaults
  std::unique_ptr<Scheduler> (*create)(SchedulerConfig config);  // validates the config; throws Error
};

#define KK_DECLARE_SCHEDULER(fn)                   \
  std::vector<ConfigKey> fn##_config_keys();       \
  std::unique_ptr<Scheduler> make_##fn(SchedulerConfig config);

KK_DECLARE_SCHEDULER(pndm)
KK_DECLARE_SCHEDULER(ddim)
KK_DECLARE_SCHEDULER(ddpm)
KK_DECLARE_SCHEDULER(lms)
KK_DECLARE_SCHEDULER(euler)
KK_DECLARE_SCHEDULER(euler_ancestral)
KK_DECLARE_SCHEDULER(heun)
KK_DECLARE_SCHEDULER(kdpm2)
KK_DECLARE_SCHEDULER(kdpm2_ancestral)
KK_DECLARE_SCHEDULER(dpm_multistep)
KK_DECLARE_SCHEDULER(dpm_singlestep)
KK_DECLARE_SCHEDULER(deis)
KK_DECLARE_SCHEDULER(unipc)
KK_DECLARE_SCHEDULER(lcm)

#undef KK_DECLARE_SCHEDULER

// Every class, in the order of diffusers' KarrasDiffusionSchedulers, then LCMScheduler (not a member of it).
const std::vector<SchedulerClass>& scheduler_classes();

}  // namespace kakusan
