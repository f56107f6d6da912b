// kakusan inspect PATH: what is in a safetensors file, a diffusers model folder or a single component folder.
// A file lists every tensor (name, dtype, shape) and its metadata; a folder lists its components with their
// class, a summary of their config and the size of their weights. --check-weights then reads every weight
// and lists the tensors holding NaN or infinite values (exit code 1 if any). Any unreadable file ends the
// command with a one-line error naming the file (exit code 2).

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "command.h"
#include "core/finite.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "pipeline/checkpoint_kind.h"

namespace kakusan::cli {
namespace {

namespace fs = std::filesystem;

// Config keys worth a glance, in display order; anything else stays in the file.
const char* const kSummaryKeys[] = {
    "sample_size",          "in_channels",      "out_channels",          "block_out_channels",
    "layers_per_block",     "attention_head_dim", "cross_attention_dim", "use_linear_projection",
    "norm_num_groups",      "latent_channels",  "scaling_factor",        "hidden_size",
    "num_hidden_layers",    "num_attention_heads", "hidden_act",         "vocab_size",
    "num_train_timesteps",  "beta_schedule",    "prediction_type",       "timestep_spacing",
    "steps_offset",         "model_max_length",
};

std::string config_summary(const JsonConfig& config) {
  std::string out;
  for (const char* key : kSummaryKeys) {
    if (!config.has(key)) continue;
    out += (out.empty() ? "" : ", ") + std::string(key) + "=" + config.json()[key].dump();
  }
  return out;
}

struct WeightTotals {
  size_t tensors = 0;
  int64_t params = 0;
  uint64_t bytes = 0;
};

WeightTotals totals_of(const SafetensorsFile& file) {
  WeightTotals t;
  for (const auto& e : file.entries()) {
    ++t.tensors;
    t.params += e.shape.numel();
    t.bytes += e.end - e.begin;
  }
  return t;
}

// "1.23M" style counts.
std::string human(double n, const char* unit = "") {
  const char* suffix[] = {"", "K", "M", "G", "T"};
  int i = 0;
  while (n >= 1000 && i < 4) n /= 1000, ++i;
  char buf[32];
  std::snprintf(buf, sizeof buf, i == 0 ? "%.0f%s%s" : "%.2f%s%s", n, suffix[i], unit);
  return buf;
}

void print_file(const fs::path& path) {
  const std::string kind = describe_checkpoint_file(path);  // refuses pickles before anything is mapped
  const SafetensorsFile file = SafetensorsFile::open(path);
  std::printf("%s\n  %s\n", path.string().c_str(), kind.c_str());
  for (const auto& [key, value] : file.metadata()) std::printf("  metadata %s: %s\n", key.c_str(), value.c_str());
  std::vector<const SafetensorsFile::Entry*> entries;
  size_t width = 0;
  for (const auto& e : file.entries()) {
    entries.push_back(&e);
    width = std::max(width, e.name.size());
  }
  std::sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
  for (const auto* e : entries)
    std::printf("  %-*s  %-4s  %s\n", int(width), e->name.c_str(), std::string(dtype_name(e->dtype)).c_str(),
                e->shape.str().c_str());
  const WeightTotals t = totals_of(file);
  std::printf("%zu tensors, %s parameters, %s\n", t.tensors, human(double(t.params)).c_str(),
              human(double(t.bytes), "B").c_str());
}

// The weights of one component folder as one line: files, tensors, parameters, dtypes.
void print_weights(const fs::path& dir, const std::string& library) {
  const WeightFiles weights = find_weight_files(dir, "", library);
  WeightTotals total;
  std::vector<std::string> dtypes;
  for (const fs::path& path : weights.files) {
    const SafetensorsFile file = SafetensorsFile::open(path);
    const WeightTotals t = totals_of(file);
    total.tensors += t.tensors;
    total.params += t.params;
    total.bytes += t.bytes;
    for (const auto& e : file.entries()) {
      const std::string name(dtype_name(e.dtype));
      if (std::find(dtypes.begin(), dtypes.end(), name) == dtypes.end()) dtypes.push_back(name);
    }
  }
  std::string names;
  for (const fs::path& p : weights.files) names += (names.empty() ? "" : ", ") + p.filename().string();
  if (weights.files.size() > 3) names = std::to_string(weights.files.size()) + " shards";
  std::string dtype_list;
  for (const std::string& d : dtypes) dtype_list += (dtype_list.empty() ? "" : "/") + d;
  std::printf("    weights: %s: %zu tensors, %s parameters (%s), %s\n", names.c_str(), total.tensors,
              human(double(total.params)).c_str(), dtype_list.c_str(), human(double(total.bytes), "B").c_str());
}

bool has_weights(const ComponentEntry& c) {
  return c.class_name.find("Scheduler") == std::string::npos && c.class_name.find("Tokenizer") == std::string::npos &&
         c.class_name.find("FeatureExtractor") == std::string::npos &&
         c.class_name.find("ImageProcessor") == std::string::npos;
}

void print_model_folder(const fs::path& dir) {
  const ModelFolder model = ModelFolder::open(dir);
  const ModelIndex& index = model.index();
  std::printf("%s: %s (diffusers %s)\n", dir.string().c_str(), index.class_name.c_str(),
              index.diffusers_version.empty() ? "?" : index.diffusers_version.c_str());
  for (const ComponentEntry& c : index.components) {
    if (c.is_null()) {
      std::printf("  %-16s (none)\n", c.name.c_str());
      continue;
    }
    std::printf("  %-16s %s.%s\n", c.name.c_str(), c.library.c_str(), c.class_name.c_str());
    const fs::path config = model.config_path(c.name);
    if (fs::exists(config)) {
      const std::string summary = config_summary(JsonConfig::load(config));
      if (!summary.empty()) std::printf("    config: %s\n", summary.c_str());
    } else {
      std::printf("    config: missing (%s)\n", config.string().c_str());
    }
    if (has_weights(c)) print_weights(model.component_dir(c.name), c.library);
  }
}

// A folder with config.json and weights but no model_index.json (e.g. a VAE given with --vae).
void print_component_folder(const fs::path& dir) {
  const JsonConfig config = JsonConfig::load(dir / "config.json");
  std::printf("%s: component %s\n", dir.string().c_str(), config.get<std::string>("_class_name", "?").c_str());
  const std::string summary = config_summary(config);
  if (!summary.empty()) std::printf("    config: %s\n", summary.c_str());
  print_weights(dir, "");
}

// The weight files behind `path` (what the listing above showed).
std::vector<fs::path> weight_files_of(const fs::path& path) {
  if (fs::is_regular_file(path)) return {path};
  if (!fs::exists(path / "model_index.json")) return find_weight_files(path, "", "").files;
  const ModelFolder model = ModelFolder::open(path);
  std::vector<fs::path> files;
  for (const ComponentEntry& c : model.index().components) {
    if (c.is_null() || !has_weights(c)) continue;
    for (fs::path& f : find_weight_files(model.component_dir(c.name), "", c.library).files)
      files.push_back(std::move(f));
  }
  return files;
}

// Reads every weight; prints each tensor holding NaN or infinite values. True when all are finite.
bool check_weights(const std::vector<fs::path>& files) {
  int64_t tensors = 0, bad = 0;
  for (const fs::path& path : files) {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (const auto& e : file.entries()) {
      ++tensors;
      const NonFiniteCount c = count_non_finite(file.view(e.name));
      if (!c.any()) continue;
      ++bad;
      std::printf("non-finite: %s: %s: %lld NaN, %lld Inf of %lld values\n", path.string().c_str(),
                  e.name.c_str(), (long long)c.nan, (long long)c.inf, (long long)e.shape.numel());
    }
    // Read once: the pages need not stay resident while the next file is checked.
    file.mapping()->drop_pages();
  }
  if (bad == 0)
    std::printf("check-weights: all %lld tensors in %zu files are finite\n", (long long)tensors, files.size());
  else
    std::printf("check-weights: %lld of %lld tensors hold NaN or infinite values\n", (long long)bad,
                (long long)tensors);
  return bad == 0;
}

int run_inspect(const std::string& target, bool check) {
  const fs::path path = fs::exists(target) ? fs::path(target) : resolve_model_path(target);
  if (fs::is_regular_file(path)) {
    print_file(path);
  } else if (fs::exists(path / "model_index.json")) {
    print_model_folder(path);
  } else if (fs::exists(path / "config.json")) {
    print_component_folder(path);
  } else {
    fail(path.string(), ": neither a safetensors file nor a model folder (no model_index.json or config.json)");
  }
  if (check && !check_weights(weight_files_of(path))) return 1;
  return 0;
}

const bool registered = register_command({
    "inspect",
    "Show the tensors of a .safetensors file, or the components of a model folder",
    [](CLI::App& app) -> std::function<int()> {
      auto target = std::make_shared<std::string>();
      auto check = std::make_shared<bool>(false);
      app.add_option("path", *target, "A .safetensors file, a diffusers model folder, a component folder or a model id")
          ->required();
      app.add_flag("--check-weights", *check,
                   "read every weight and list the tensors holding NaN or infinite values (exit code 1 if any)");
      return [target, check] { return run_inspect(*target, *check); };
    },
});

}  // namespace
}  // namespace kakusan::cli
