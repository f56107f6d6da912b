// kakusan scheduler: the schedulers and their aliases, and what a scheduler does with a model's config.
//
//   kakusan scheduler --list
//   kakusan scheduler --model DIR --scheduler ClassName|alias [--scheduler-option key=value ...] --steps N
//
// The second form prints, as JSON, the timesteps, the sigmas (null for schedulers without them) and
// init_noise_sigma after XScheduler.from_config(DIR/scheduler/scheduler_config.json) and set_timesteps(N),
// plus the effective config. Without --scheduler the model's own scheduler class is used.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/error.h"
#include "io/json_config.h"
#include "schedulers/scheduler.h"

namespace kakusan::cli {
namespace {

struct SchedulerOptions {
  bool list = false;
  std::string model;
  std::string scheduler;
  std::vector<std::string> scheduler_options;
  int steps = 50;
};

int run_list() {
  std::map<std::string, std::vector<std::string>> by_class;  // class -> aliases
  std::vector<std::string> order;
  for (const SchedulerAlias& a : scheduler_aliases()) {
    if (!by_class.count(a.class_name)) order.push_back(a.class_name);
    if (a.alias == a.class_name) {
      by_class[a.class_name];
      continue;
    }
    std::string text = "\"" + a.alias + "\"";
    for (const auto& [k, v] : a.options) text += " " + k + "=" + v;
    by_class[a.class_name].push_back(text);
  }
  for (const std::string& cls : order) {
    std::printf("%s\n", cls.c_str());
    for (const std::string& alias : by_class[cls]) std::printf("    %s\n", alias.c_str());
  }
  return 0;
}

int run_show(const SchedulerOptions& o) {
  KK_CHECK(!o.model.empty(), "--model is required (or use --list)");
  KK_CHECK(o.steps >= 1, "--steps must be at least 1, got ", o.steps);
  const std::filesystem::path config_path = std::filesystem::path(o.model) / "scheduler" / "scheduler_config.json";
  const JsonConfig source = JsonConfig::load(config_path);
  std::string name = o.scheduler;
  if (name.empty()) {
    KK_CHECK(source.has("_class_name"), config_path.string(), ": no _class_name; pass --scheduler");
    name = source.require<std::string>("_class_name");
  }
  std::map<std::string, std::string> options;
  for (const std::string& item : o.scheduler_options) {
    const size_t eq = item.find('=');
    KK_CHECK(eq != std::string::npos && eq > 0, "--scheduler-option \"", item, "\" is not key=value");
    options[item.substr(0, eq)] = item.substr(eq + 1);
  }
  std::unique_ptr<Scheduler> scheduler = make_scheduler(name, source, options);
  scheduler->set_timesteps(o.steps);
  nlohmann::ordered_json out;
  out["scheduler"] = scheduler->class_name();
  nlohmann::json timesteps = nlohmann::json::array();
  for (double t : scheduler->timesteps()) {
    if (scheduler->integer_timesteps())
      timesteps.push_back(int64_t(t));
    else
      timesteps.push_back(t);
  }
  out["timesteps"] = timesteps;
  const auto sigmas = scheduler->sigmas();
  out["sigmas"] = sigmas ? nlohmann::json(*sigmas) : nlohmann::json(nullptr);
  out["init_noise_sigma"] = scheduler->init_noise_sigma();
  out["order"] = scheduler->order();
  // JSON has no infinities; write them as Python's json does (lambda_min_clipped = -Infinity), as strings.
  nlohmann::ordered_json config;
  for (const auto& [key, value] : scheduler->config().json.items()) {
    if (value.is_number_float() && !std::isfinite(value.get<double>()))
      config[key] = value.get<double>() < 0 ? "-Infinity" : "Infinity";
    else
      config[key] = value;
  }
  out["config"] = config;
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

const bool registered = register_command({
    "scheduler",
    "List the schedulers, or print a scheduler's timesteps and sigmas for a model as JSON",
    [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<SchedulerOptions>();
      app.add_flag("--list", o->list, "List the scheduler classes and their aliases");
      app.add_option("--model", o->model, "Model folder (reads scheduler/scheduler_config.json)");
      app.add_option("--scheduler", o->scheduler, "Class name or alias (default: the model's own)");
      app.add_option("--scheduler-option", o->scheduler_options, "Config override key=value (repeatable)")
          ->allow_extra_args(false);
      app.add_option("--steps", o->steps, "Number of inference steps")->check(CLI::PositiveNumber);
      return [o] { return o->list ? run_list() : run_show(*o); };
    },
});

}  // namespace
}  // namespace kakusan::cli
