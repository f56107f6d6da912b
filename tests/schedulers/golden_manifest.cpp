#include "golden_manifest.h"

#include <fstream>
#include <regex>
#include <sstream>

#include "support/golden.h"

namespace kakusan::testing {

const std::optional<nlohmann::json>& golden_manifest() {
  static const std::optional<nlohmann::json> manifest = []() -> std::optional<nlohmann::json> {
    const auto dir = golden_dir();
    if (!dir) return std::nullopt;
    std::ifstream in(*dir / "manifest.json");
    if (!in) return std::nullopt;
    std::stringstream text;
    text << in.rdbuf();
    // Bare -Infinity / Infinity / NaN tokens (outside strings) become strings.
    const std::string fixed =
        std::regex_replace(text.str(), std::regex(R"(([:\[,]\s*)(-?Infinity|NaN)(?=\s*[,\]}]))"), "$1\"$2\"");
    return nlohmann::json::parse(fixed);
  }();
  return manifest;
}

std::vector<std::string> scheduler_case_ids() {
  std::vector<std::string> ids;
  if (!golden_manifest()) return ids;
  for (const auto& c : (*golden_manifest())["cases"])
    if (c["id"].get<std::string>().rfind("sched_", 0) == 0 && c["params"].contains("class"))
      ids.push_back(c["id"].get<std::string>());
  return ids;
}

const nlohmann::json& manifest_case(const std::string& id) {
  for (const auto& c : (*golden_manifest())["cases"])
    if (c["id"] == id) return c;
  throw std::runtime_error("manifest has no case " + id);
}

}  // namespace kakusan::testing
