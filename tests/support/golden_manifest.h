// The golden kit's manifest.json, read once for every test binary: its cases (id, file, params) and the
// tolerance each case suggests. The tests take their tolerances from here rather than copying the numbers.
//
// Python's json module spells IEEE infinities and NaN as bare words (-Infinity, Infinity, NaN) that strict
// JSON refuses; outside strings they are read as the strings "-Infinity", "Infinity" and "NaN".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "support/golden.h"

namespace kakusan::testing {

// The parsed manifest; nullptr when the kit is absent. A kit whose manifest is missing or malformed throws.
const nlohmann::json* golden_manifest();

// The case with this id (throws kakusan::Error naming it when the kit or the case is absent).
const nlohmann::json& golden_case(const std::string& id);

// The ids of the cases whose id starts with `prefix`, in manifest order; empty without the kit.
std::vector<std::string> golden_case_ids(std::string_view prefix);

// A case's suggested tolerance: its "tolerance" object, or the sub-object `part` of it ("latents", "sigmas",
// ...); a missing atol or rtol is 0. Throws when the case gives no such numbers (e.g. "exact" as text).
// Without the kit, {0, 0}: the tests that use it skip, and a suite may read it during static initialisation.
Tolerance golden_tolerance(const std::string& id, const std::string& part = "");

}  // namespace kakusan::testing
