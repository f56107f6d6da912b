#include "io/model_folder.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace kakusan {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// File tests that never throw: a name the OS refuses (too long, bad permissions) simply is not there.
bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// diffusers' _add_variant: the variant goes before the last extension
// ("model.safetensors" -> "model.fp16.safetensors", "x.safetensors.index.json" -> "x.safetensors.index.fp16.json").
std::string add_variant(const std::string& file_name, const std::string& variant) {
  if (variant.empty()) return file_name;
  const size_t dot = file_name.rfind('.');
  return file_name.substr(0, dot) + "." + variant + file_name.substr(dot);
}

std::vector<std::string> weight_stems(const std::string& library) {
  if (library == "diffusers") return {"diffusion_pytorch_model"};
  if (library == "transformers") return {"model"};
  return {"diffusion_pytorch_model", "model"};
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// The path of `relative` inside `dir`, or nullopt if it leaves the folder ("../x", "a/../../x"). Checked
// lexically, not through the file system: in the Hugging Face cache every file is a symlink into ../../blobs,
// which is expected and fine.
std::optional<fs::path> inside(const fs::path& dir, const fs::path& relative) {
  const fs::path base = dir.lexically_normal();
  const fs::path full = (base / relative).lexically_normal();
  const fs::path rel = full.lexically_relative(base);
  if (rel.empty() || rel == "." || *rel.begin() == "..") return std::nullopt;
  return full;
}

// The shard files named by a *.safetensors.index.json, in order of first mention, each checked to be a
// plain file inside `dir`.
std::vector<fs::path> read_shard_index(const fs::path& index_path, const fs::path& dir) {
  const JsonConfig index = JsonConfig::load(index_path);
  const std::string where = index_path.string();
  KK_CHECK(index.json().contains("weight_map") && index.json()["weight_map"].is_object(), where,
           ": sharded checkpoint index has no \"weight_map\" object");
  const json& map = index.json()["weight_map"];
  KK_CHECK(!map.empty(), where, ": \"weight_map\" is empty");
  std::vector<fs::path> shards;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    KK_CHECK(it.value().is_string(), where, ": weight_map entry for '", it.key(), "' is not a file name");
    const std::string shard = it.value().get<std::string>();
    if (!seen.insert(shard).second) continue;
    const fs::path rel(shard);
    KK_CHECK(!shard.empty() && rel.is_relative(), where, ": shard '", shard,
             "' must be a file name relative to the checkpoint folder");
    const std::optional<fs::path> full = inside(dir, rel);
    KK_CHECK(full.has_value(), where, ": shard '", shard, "' points outside the folder ", dir.string());
    KK_CHECK(full->extension() == ".safetensors", where, ": shard '", shard,
             "' is not a .safetensors file (only safetensors checkpoints are supported)");
    KK_CHECK(is_file(*full), where, ": shard '", shard, "' (listed for tensor '", it.key(),
             "') is missing from ", dir.string());
    shards.push_back(*full);
  }
  return shards;
}

// Looks for one naming of the weights (with or without the variant); nullopt if none of its files exist.
std::optional<WeightFiles> find_with_variant(const fs::path& dir, const std::vector<std::string>& stems,
                                             const std::string& variant) {
  for (const std::string& stem : stems) {
    const fs::path single = dir / add_variant(stem + ".safetensors", variant);
    if (is_file(single)) return WeightFiles{{single}, std::nullopt, !variant.empty()};
    const fs::path index = dir / add_variant(stem + ".safetensors.index.json", variant);
    if (is_file(index)) return WeightFiles{read_shard_index(index, dir), index, !variant.empty()};
  }
  return std::nullopt;
}

// Pickle checkpoints present in `dir`, to explain why nothing usable was found.
std::vector<std::string> pickle_files(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::string ext = it->path().extension().string();
    if (ext == ".bin" || ext == ".ckpt" || ext == ".pt" || ext == ".pth" ||
        name.find(".bin.index") != std::string::npos)
      found.push_back(name);
  }
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

WeightFiles find_weight_files(const fs::path& dir, const std::string& variant, const std::string& library) {
  KK_CHECK(is_dir(dir), dir.string(), ": weight folder does not exist");
  const std::vector<std::string> stems = weight_stems(library);
  if (!variant.empty()) {
    if (auto found = find_with_variant(dir, stems, variant)) return *found;
  }
  if (auto found = find_with_variant(dir, stems, "")) return *found;

  std::vector<std::string> looked_for;
  for (const std::string& stem : stems) {
    if (!variant.empty()) looked_for.push_back(add_variant(stem + ".safetensors", variant));
    looked_for.push_back(stem + ".safetensors");
    looked_for.push_back(stem + ".safetensors.index.json");
  }
  const std::vector<std::string> pickles = pickle_files(dir);
  if (!pickles.empty())
    fail(dir.string(), ": only PyTorch pickle weights found (", join(pickles, ", "),
         "): pickle checkpoints are not supported (loading them can run arbitrary code); kakusan reads "
         "safetensors only. Convert them once in Python: "
         "Model.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)");
  fail(dir.string(), ": no weights found (looked for ", join(looked_for, ", "), ")");
}

ModelIndex ModelIndex::parse(const JsonConfig& config) {
  ModelIndex index;
  index.json = config;
  const std::string& where = config.source();
  index.class_name = config.get<std::string>("_class_name", "");
  KK_CHECK(!index.class_name.empty(), where, ": missing \"_class_name\" (not a diffusers model_index.json?)");
  index.diffusers_version = config.get<std::string>("_diffusers_version", "");
  for (auto it = config.json().begin(); it != config.json().end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& value = it.value();
    if (key.empty() || key[0] == '_' || !value.is_array()) continue;  // metadata or a pipeline option
    auto string_or_null = [](const nlohmann::json& v) { return v.is_string() || v.is_null(); };
    KK_CHECK(value.size() == 2 && string_or_null(value[0]) && string_or_null(value[1]), where,
             ": component \"", key, "\" must be a [library, class] pair, got ", value.dump());
    ComponentEntry entry;
    entry.name = key;
    if (value[0].is_string()) entry.library = value[0].get<std::string>();
    if (value[1].is_string()) entry.class_name = value[1].get<std::string>();
    index.components.push_back(std::move(entry));
  }
  std::sort(index.components.begin(), index.components.end(),
            [](const ComponentEntry& a, const ComponentEntry& b) { return a.name < b.name; });
  return index;
}

const ComponentEntry* ModelIndex::find(const std::string& name) const {
  for (const ComponentEntry& c : components)
    if (c.name == name) return &c;
  return nullptr;
}

ModelFolder ModelFolder::open(const fs::path& dir) {
  KK_CHECK(is_dir(dir), dir.string(), ": model folder does not exist");
  const fs::path index_path = dir / "model_index.json";
  KK_CHECK(is_file(index_path), dir.string(),
           ": not a diffusers model folder (no model_index.json). For a single component folder such as a VAE, "
           "pass it where a component is expected (e.g. --vae)");
  ModelFolder folder;
  folder.root_ = dir;
  folder.index_ = ModelIndex::parse(JsonConfig::load(index_path));
  return folder;
}

bool ModelFolder::has_component(const std::string& name) const {
  const ComponentEntry* c = index_.find(name);
  return c != nullptr && !c->is_null();
}

const ComponentEntry& ModelFolder::component(const std::string& name) const {
  const ComponentEntry* c = index_.find(name);
  if (c == nullptr) {
    std::vector<std::string> names;
    for (const ComponentEntry& e : index_.components) names.push_back(e.name);
    fail(root_.string(), ": model_index.json has no component \"", name, "\" (it lists: ", join(names, ", "), ")");
  }
  KK_CHECK(!c->is_null(), root_.string(), ": component \"", name, "\" is null in model_index.json");
  return *c;
}

fs::path ModelFolder::component_dir(const std::string& name) const {
  component(name);  // validates
  const fs::path dir = root_ / name;
  KK_CHECK(is_dir(dir), dir.string(), ": folder of component \"", name, "\" is missing");
  return dir;
}

fs::path ModelFolder::config_path(const std::string& name) const {
  const ComponentEntry& entry = component(name);
  auto is = [&](const char* kind) { return entry.class_name.find(kind) != std::string::npos; };
  const char* file = is("Scheduler")                               ? "scheduler_config.json"
                     : is("Tokenizer")                             ? "tokenizer_config.json"
                     : is("FeatureExtractor") || is("ImageProcessor") ? "preprocessor_config.json"
                                                                   : "config.json";
  return component_dir(name) / file;
}

JsonConfig ModelFolder::load_config(const std::string& name) const { return JsonConfig::load(config_path(name)); }

WeightFiles ModelFolder::weight_files(const std::string& name, const std::string& variant) const {
  const ComponentEntry& entry = component(name);
  return find_weight_files(component_dir(name), variant, entry.library);
}

fs::path hf_hub_cache_dir() {
  auto env = [](const char* key) -> std::optional<std::string> {
    const char* v = std::getenv(key);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  if (auto v = env("HF_HUB_CACHE")) return *v;
  if (auto v = env("HUGGINGFACE_HUB_CACHE")) return *v;
  if (auto v = env("HF_HOME")) return fs::path(*v) / "hub";
  if (auto v = env("XDG_CACHE_HOME")) return fs::path(*v) / "huggingface" / "hub";
  const fs::path home = env("HOME").value_or(".");
  return home / ".cache" / "huggingface" / "hub";
}

namespace {

bool is_commit_hash(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// A hub id is "name" or "org/name", made of letters, digits and - _ . (no "..", no leading '.').
bool is_hub_id(const std::string& id) {
  if (id.empty() || std::count(id.begin(), id.end(), '/') > 1) return false;
  if (id.find("..") != std::string::npos || id.front() == '/' || id.back() == '/' || id.front() == '.')
    return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/';
  });
}

}  // namespace

fs::path resolve_model_path(const std::string& path_or_id, const std::string& revision) {
  if (is_dir(path_or_id)) return path_or_id;
  KK_CHECK(is_hub_id(path_or_id), "model '", path_or_id, "': no such folder, and not a Hugging Face model id");
  KK_CHECK(!revision.empty() && revision.find('/') == std::string::npos && revision.find("..") == std::string::npos,
           "model '", path_or_id, "': invalid revision '", revision, "'");
  std::string repo_folder = "models--" + path_or_id;
  for (size_t pos = 0; (pos = repo_folder.find('/', pos)) != std::string::npos;) repo_folder.replace(pos, 1, "--");
  const fs::path cache = hf_hub_cache_dir();
  const fs::path repo = cache / repo_folder;
  KK_CHECK(is_dir(repo), "model '", path_or_id, "': no such folder, and not in the Hugging Face cache (",
           repo.string(), " does not exist; download it with `huggingface-cli download ", path_or_id,
           "` or set HF_HUB_CACHE / HF_HOME)");

  std::string commit = revision;
  if (!is_commit_hash(revision)) {
    const fs::path ref = repo / "refs" / revision;
    std::ifstream in(ref);
    KK_CHECK(in.good(), "model '", path_or_id, "': the Hugging Face cache has no revision '", revision, "' (",
             ref.string(), " is missing)");
    std::getline(in, commit);
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    KK_CHECK(is_commit_hash(commit), ref.string(), ": expected a 40-character commit hash, got '", commit, "'");
  }
  const fs::path snapshot = repo / "snapshots" / commit;
  KK_CHECK(is_dir(snapshot), "model '", path_or_id, "': revision '", revision, "' points to snapshot ",
           snapshot.string(), ", which is missing");
  return snapshot;
}

nlohmann::json stable_diffusion_model_index(const std::string& diffusers_version, const std::string& scheduler_class) {
  return {{"_class_name", "StableDiffusionPipeline"},
          {"_diffusers_version", diffusers_version},
          {"feature_extractor", {nullptr, nullptr}},
          {"image_encoder", {nullptr, nullptr}},
          {"requires_safety_checker", false},
          {"safety_checker", {nullptr, nullptr}},
          {"scheduler", {"diffusers", scheduler_class}},
          {"text_encoder", {"transformers", "CLIPTextModel"}},
          {"tokenizer", {"transformers", "CLIPTokenizer"}},
          {"unet", {"diffusers", "UNet2DConditionModel"}},
          {"vae", {"diffusers", "AutoencoderKL"}}};
}

}  // namespace kakusan
