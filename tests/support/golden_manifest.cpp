#include "support/golden_manifest.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace kakusan::testing {

namespace {
// The strict JSON text of a manifest written by Python: bare -Infinity / Infinity / NaN outside strings quoted.
// (The scheduler goldens read lambda_min_clipped = "-Infinity" back through this.)
std::string strict_json(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const std::string_view word : {"-Infinity", "Infinity", "NaN"}) {
      if (text.substr(i, word.size()) == word) {
        out += '"';
        out += word;
        out += '"';
        i += word.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}
}  // namespace

const nlohmann::json* golden_manifest() {
  static const std::optional<nlohmann::json> manifest = []() -> std::optional<nlohmann::json> {
    const auto dir = golden_dir();
    if (!dir) return std::nullopt;
    const std::filesystem::path path = *dir / "manifest.json";
    std::ifstream in(path);
    if (!in) fail("golden kit ", dir->string(), " has no readable manifest.json");
    std::ostringstream text;
    text << in.rdbuf();
    nlohmann::json parsed = nlohmann::json::parse(strict_json(text.str()), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.contains("cases") || !parsed["cases"].is_array())
      fail(path.string(), ": not a golden-kit manifest (JSON with a \"cases\" array)");
    return parsed;
  }();
  return manifest ? &*manifest : nullptr;
}

const nlohmann::json& golden_case(const std::string& id) {
  const nlohmann::json* manifest = golden_manifest();
  if (manifest == nullptr) fail("golden case ", id, " asked for, but ", golden_absent_reason());
  for (const nlohmann::json& c : (*manifest)["cases"])
    if (c.value("id", "") == id) return c;
  fail("golden kit manifest.json has no case \"", id, "\"");
}

std::vector<std::string> golden_case_ids(std::string_view prefix) {
  std::vector<std::string> ids;
  if (const nlohmann::json* manifest = golden_manifest())
    for (const nlohmann::json& c : (*manifest)["cases"])
      if (const std::string id = c.value("id", ""); id.starts_with(prefix)) ids.push_back(id);
  return ids;
}

Tolerance golden_tolerance(const std::string& id, const std::string& part) {
  if (golden_manifest() == nullptr) return {};
  const nlohmann::json& c = golden_case(id);
  const nlohmann::json* t = c.contains("tolerance") ? &c["tolerance"] : nullptr;
  if (t != nullptr && !part.empty()) t = t->is_object() && t->contains(part) ? &(*t)[part] : nullptr;
  const std::string what = "golden case \"" + id + "\" tolerance" + (part.empty() ? "" : "." + part);
  if (t == nullptr || !t->is_object() || !(t->contains("atol") || t->contains("rtol")))
    fail(what, " is not an {atol, rtol} object: ", t == nullptr ? "absent" : t->dump());
  return {t->value("atol", 0.0), t->value("rtol", 0.0)};
}

}  // namespace kakusan::testing
