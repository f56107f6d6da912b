#include "io/weight_store.h"

namespace kakusan {

const std::vector<std::pair<std::string, std::string>>& legacy_name_table() {
  // diffusers' AttentionBlock of versions < 0.14 (still in runwayml/stable-diffusion-v1-5's VAE and in
  // stabilityai/sd-vae-ft-mse); diffusers renames them the same way when it loads such a file.
  static const std::vector<std::pair<std::string, std::string>> table = {
      {".attentions.0.query.", ".attentions.0.to_q."},
      {".attentions.0.key.", ".attentions.0.to_k."},
      {".attentions.0.value.", ".attentions.0.to_v."},
      {".attentions.0.proj_attn.", ".attentions.0.to_out.0."},
  };
  return table;
}

std::string normalize_weight_name(const std::string& name) {
  if (name.find("mid_block.attentions.0.") == std::string::npos) return name;
  std::string out = name;
  for (const auto& [from, to] : legacy_name_table()) {
    const size_t at = out.find(from);
    if (at != std::string::npos) {
      out.replace(at, from.size(), to);
      break;
    }
  }
  return out;
}

WeightStore WeightStore::open(const std::vector<std::filesystem::path>& files) {
  WeightStore store;
  store.files_.reserve(files.size());
  for (const auto& path : files) store.files_.push_back(SafetensorsFile::open(path));
  for (const SafetensorsFile& file : store.files_) {
    for (const auto& entry : file.entries()) {
      const std::string name = normalize_weight_name(entry.name);
      auto [it, inserted] = store.index_.emplace(name, Found{&file, entry.name});
      if (!inserted)
        fail(file.path().string(), ": tensor '", entry.name, "' is also in ", it->second.file->path().string());
    }
  }
  return store;
}

const WeightStore::Found* WeightStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &it->second;
}

std::optional<WeightRef> WeightStore::get(const std::string& name) const {
  const Found* found = find(name);
  if (found == nullptr) return std::nullopt;
  const SafetensorsFile& file = *found->file;
  // The borrowed tensor holds whichever memory backs the view: the mapping, or the file's aligned copy.
  auto borrowed = std::make_shared<const Tensor>(file.borrow(found->file_name));
  const MappedFile& mapping = *file.mapping();
  const auto* bytes = static_cast<const std::byte*>(borrowed->data());
  WeightRef ref;
  ref.view = borrowed->view();
  ref.mapped = bytes >= mapping.data() && bytes < mapping.data() + mapping.size();
  ref.owner = std::move(borrowed);
  ref.file = file.path().string();
  if (found->file_name != name) ref.stored_as = str_cat("tensor '", found->file_name, "'");
  return ref;
}

std::vector<std::shared_ptr<const MappedFile>> WeightStore::mapped_files() const {
  std::vector<std::shared_ptr<const MappedFile>> out;
  out.reserve(files_.size());
  for (const SafetensorsFile& file : files_) out.push_back(file.mapping());
  return out;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, found] : index_) out.push_back(name);
  return out;
}

std::string WeightStore::describe() const {
  if (files_.size() == 1) return files_[0].path().string();
  if (files_.empty()) return "(no weight files)";
  return str_cat(files_.size(), " files in ", files_[0].path().parent_path().string());
}

}  // namespace kakusan
