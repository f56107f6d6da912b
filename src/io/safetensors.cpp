#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <set>

#include "io/atomic_file.h"

namespace kakusan {

namespace {

using json = nlohmann::json;

uint64_t read_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | uint64_t(p[i]);
  return v;
}

// Multiplies with overflow detection; returns false on overflow.
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

SafetensorsFile::Entry parse_entry(const std::string& where, const std::string& name, const json& info,
                                   uint64_t data_size) {
  auto bad = [&](const auto&... why) { fail(where, ": tensor '", name, "': ", why...); };
  if (!info.is_object()) bad("header entry is not a JSON object");
  if (!info.contains("dtype") || !info["dtype"].is_string()) bad("missing or non-string \"dtype\"");
  if (!info.contains("shape") || !info["shape"].is_array()) bad("missing or non-array \"shape\"");
  if (!info.contains("data_offsets") || !info["data_offsets"].is_array() || info["data_offsets"].size() != 2)
    bad("\"data_offsets\" must be an array of two integers");

  const std::string dtype_str = info["dtype"].get<std::string>();
  const auto dtype = parse_dtype(dtype_str);
  if (!dtype) bad("unsupported dtype \"", dtype_str, "\" (supported: F32, F16, BF16, I64)");

  const json& shape_json = info["shape"];
  if (shape_json.size() > size_t(Shape::kMaxRank)) bad("rank ", shape_json.size(), " is above ", Shape::kMaxRank);
  Shape shape;
  for (const json& d : shape_json) {
    if (!d.is_number_unsigned()) bad("shape has a dimension that is not a non-negative integer");
    shape.push_back(int64_t(std::min<uint64_t>(d.get<uint64_t>(), uint64_t(std::numeric_limits<int64_t>::max()))));
  }
  // Every partial product of the dimensions (numel, strides, in any order) must fit int64_t; bounding the
  // product of the non-zero dimensions bounds them all, even when a zero makes numel itself 0. The tensor's
  // byte count must fit as well.
  uint64_t nonzero_product = dtype_size(*dtype), numel = 1;
  for (const json& d : shape_json) {
    const uint64_t dim = d.get<uint64_t>();
    if (dim != 0 && (!checked_mul(nonzero_product, dim, &nonzero_product) ||
                     nonzero_product > uint64_t(std::numeric_limits<int64_t>::max())))
      bad("shape ", shape.str(), " is too large (its element count overflows 64 bits)");
    numel *= dim;  // cannot overflow: bounded by nonzero_product, or 0
  }
  const uint64_t nbytes = numel * dtype_size(*dtype);

  const json& offs = info["data_offsets"];
  if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
    bad("\"data_offsets\" must be non-negative integers");
  const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
  if (begin > end) bad("data_offsets [", begin, ", ", end, "] are reversed");
  if (end > data_size)
    bad("data_offsets [", begin, ", ", end, "] reach past the end of the data (", data_size, " bytes)");
  if (end - begin != nbytes)
    bad("byte range holds ", end - begin, " bytes but ", dtype_str, " ", shape.str(), " needs ", nbytes);
  return {name, *dtype, shape, size_t(begin), size_t(end)};
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) { return parse(MappedFile::open(path)); }

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<const MappedFile> file) {
  const std::string where = file->path().string();
  const size_t size = file->size();
  if (size < 8) fail(where, ": not a safetensors file (", size, " bytes, shorter than the 8-byte header length)");
  const uint64_t header_len = read_le64(file->data());
  if (header_len > kMaxSafetensorsHeader)
    fail(where, ": header length ", header_len, " is above the 100 MB limit (corrupt or not a safetensors file)");
  if (header_len > size - 8)
    fail(where, ": truncated: header length ", header_len, " but only ", size - 8, " bytes follow");

  const char* header_begin = reinterpret_cast<const char*>(file->data() + 8);
  // nlohmann keeps only one of duplicate keys, so duplicates are caught while parsing.
  std::set<std::string> top_keys;
  std::string duplicate;
  const json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && !top_keys.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  json header = json::parse(header_begin, header_begin + header_len, on_event, /*allow_exceptions=*/false);
  if (header.is_discarded()) fail(where, ": header is not valid JSON");
  if (!duplicate.empty()) fail(where, ": tensor name '", duplicate, "' appears twice in the header");
  if (!header.is_object()) fail(where, ": header is not a JSON object");

  SafetensorsFile st;
  st.file_ = file;
  const std::byte* data_begin = file->data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail(where, ": \"__metadata__\" is not a JSON object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) fail(where, ": __metadata__ value for '", m.key(), "' is not a string");
        st.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    st.entries_.push_back(parse_entry(where, it.key(), it.value(), data_size));
  }
  std::sort(st.entries_.begin(), st.entries_.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const Entry& e : st.entries_) {
    if (e.begin < cursor) fail(where, ": tensor '", e.name, "' overlaps the previous tensor's bytes");
    if (e.begin > cursor) fail(where, ": gap of ", e.begin - cursor, " unused bytes before tensor '", e.name, "'");
    cursor = e.end;
  }
  if (cursor != data_size)
    fail(where, ": ", data_size - cursor, " bytes after the last tensor are not described by the header");
  for (size_t i = 0; i < st.entries_.size(); ++i) st.index_[st.entries_[i].name] = i;
  st.locate_tensor_data(data_begin);
  return st;
}

void SafetensorsFile::locate_tensor_data(const std::byte* data_begin) {
  constexpr size_t kAlign = 64;  // what Tensor::empty gives, so copies suit any kernel
  auto misaligned = [&](const Entry& e) {
    return e.end > e.begin && reinterpret_cast<uintptr_t>(data_begin + e.begin) % dtype_size(e.dtype) != 0;
  };
  size_t copy_bytes = 0;
  for (const Entry& e : entries_)
    if (misaligned(e)) copy_bytes += (e.end - e.begin + kAlign - 1) / kAlign * kAlign;
  std::byte* copy = nullptr;
  if (copy_bytes > 0) {
    copy = static_cast<std::byte*>(::operator new[](copy_bytes, std::align_val_t(kAlign)));
    aligned_copy_ = std::shared_ptr<const void>(
        copy, [](const void* p) { ::operator delete[](const_cast<void*>(p), std::align_val_t(kAlign)); });
  }
  tensor_data_.clear();
  size_t offset = 0;
  for (const Entry& e : entries_) {
    if (!misaligned(e)) {
      tensor_data_.push_back({data_begin + e.begin, false});
      continue;
    }
    std::memcpy(copy + offset, data_begin + e.begin, e.end - e.begin);
    tensor_data_.push_back({copy + offset, true});
    offset += (e.end - e.begin + kAlign - 1) / kAlign * kAlign;
  }
}

std::shared_ptr<const void> SafetensorsFile::owner_of(const Entry& e) const {
  if (tensor_data_[index_of(e)].copied) return aligned_copy_;
  return file_;
}

const SafetensorsFile::Entry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

TensorView SafetensorsFile::view(const std::string& name) const {
  const Entry* e = find(name);
  if (e == nullptr) fail(path().string(), ": no tensor named '", name, "'");
  return TensorView(const_cast<std::byte*>(data_of(*e)), e->dtype, e->shape);
}

Tensor SafetensorsFile::borrow(const std::string& name) const {
  const TensorView v = view(name);
  return Tensor::borrow(v, owner_of(*find(name)));
}

Tensor SafetensorsFile::load_f32(const std::string& name) const {
  const TensorView v = view(name);
  KK_CHECK(is_float(v.dtype), path().string(), ": tensor '", name, "' is ", dtype_name(v.dtype),
           ", expected a floating-point dtype");
  Tensor t = Tensor::empty(v.shape, DType::F32);
  convert_into(v, t.view());
  return t;
}

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, TensorView>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& [name, view] : tensors) {
    KK_CHECK(!header.contains(name), path.string(), ": duplicate tensor name '", name, "'");
    json shape = json::array();
    for (int64_t d : view.shape) shape.push_back(d);
    header[name] = {{"dtype", std::string(dtype_name(view.dtype))}, {"shape", shape},
                    {"data_offsets", {offset, offset + view.nbytes()}}};
    offset += view.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned, as the reference does
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  AtomicFile out(path);
  out.write(len, 8);
  out.write(text);
  for (const auto& [name, view] : tensors) {
    if (view.is_contiguous()) {
      out.write(view.data, view.nbytes());
    } else {
      const Tensor dense = Tensor::copy_of(view);
      out.write(dense.data(), dense.nbytes());
    }
  }
  out.commit();
}

}  // namespace kakusan
