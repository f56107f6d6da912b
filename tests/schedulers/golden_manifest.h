// Reading the golden kit's manifest.json for the scheduler tests (Python's json writes -Infinity / NaN,
// which standard JSON parsers refuse; they are read as strings here).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kakusan::testing {

// The parsed manifest, or nullopt when the kit is absent.
const std::optional<nlohmann::json>& golden_manifest();
// The manifest's scheduler cases (ids "sched_<Class>[_variant]" with a "class" parameter).
std::vector<std::string> scheduler_case_ids();
const nlohmann::json& manifest_case(const std::string& id);

}  // namespace kakusan::testing
