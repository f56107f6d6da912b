// The weight sources one by one and composed: the diffusers files (WeightStore), a rename/reshape table, a
// split of fused tensors and an overlay of owned copies. Values, zero-copy views, liveness and the errors
// (which name the file and tensor, expected vs got).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <numeric>

#include "io/safetensors.h"
#include "io/weight_overlay.h"
#include "io/weight_rename.h"
#include "io/weight_split.h"
#include "io/weight_store.h"
#include "scratch_dir.h"

namespace kakusan {
namespace {

using testing::ScratchDir;

// A float32 tensor holding first, first + 1, ...
Tensor iota(Shape shape, float first = 0) {
  Tensor t = Tensor::empty(shape);
  std::iota(t.f32(), t.f32() + t.numel(), first);
  return t;
}

std::vector<float> values(const TensorView& v) {
  EXPECT_EQ(v.dtype, DType::F32);
  EXPECT_TRUE(v.is_contiguous());
  return std::vector<float>(v.f32(), v.f32() + v.numel());
}

std::vector<float> values(const Tensor& t) { return values(t.view()); }

// Whether `p` points into `file`'s mapping.
bool in_mapping(const void* p, const MappedFile& file) {
  const auto* byte = static_cast<const std::byte*>(p);
  return byte >= file.data() && byte < file.data() + file.size();
}

// Runs `action` and returns the message of the kakusan::Error it throws ("" if none).
template <typename Action>
std::string error_of(Action&& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_MENTIONS(message, fragment) \
  EXPECT_NE((message).find(fragment), std::string::npos) << "\"" << (fragment) << "\" not in: " << (message)

class WeightSources : public ::testing::Test {
 protected:
  // One file: a 1x1 convolution kernel, a fused [12, 4] projection and its bias, a plain vector.
  void SetUp() override {
    const Tensor conv = iota({4, 4, 1, 1}), fused = iota({12, 4}, 100), fused_bias = iota({12}, 200),
                 plain = iota({3}, 300);
    path_ = dir_ / "model.safetensors";
    write_safetensors(path_, {{"first.attn.q.weight", conv.view()},
                              {"cond.attn.in_proj_weight", fused.view()},
                              {"cond.attn.in_proj_bias", fused_bias.view()},
                              {"cond.ln.weight", plain.view()}});
    file_ = std::make_shared<WeightStore>(WeightStore::open({path_}));
  }

  ScratchDir dir_;
  std::filesystem::path path_;
  std::shared_ptr<const WeightStore> file_;
};

TEST_F(WeightSources, FileSourceLendsMappedViewsThatOutliveIt) {
  EXPECT_EQ(file_->names(), (std::vector<std::string>{"cond.attn.in_proj_bias", "cond.attn.in_proj_weight",
                                                      "cond.ln.weight", "first.attn.q.weight"}));
  EXPECT_FALSE(file_->get("absent").has_value());
  ASSERT_EQ(file_->mapped_files().size(), 1u);
  const std::shared_ptr<const MappedFile> mapping = file_->mapped_files()[0];

  std::optional<WeightRef> ref = file_->get("cond.ln.weight");
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->view.shape, Shape({3}));
  EXPECT_TRUE(ref->mapped);
  EXPECT_TRUE(in_mapping(ref->view.data, *mapping)) << "a file's tensor is a view of its mapping (zero copy)";
  EXPECT_EQ(ref->file, path_.string());
  EXPECT_EQ(ref->stored_as, "");
  EXPECT_EQ(ref->describe("cond.ln.weight"), path_.string() + ": tensor 'cond.ln.weight'");

  file_.reset();  // the reference alone keeps the mapping alive
  EXPECT_EQ(values(ref->view), (std::vector<float>{300, 301, 302}));
}

TEST_F(WeightSources, FileSourceCopiesMisalignedTensorsIntoOwnedMemory) {
  // A 2-byte-padded header puts the float32 data off its 4-byte alignment: SafetensorsFile copies it.
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while ((8 + header.size()) % 4 != 2) header += ' ';
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char(uint64_t(header.size()) >> (8 * i));
  const float data[2] = {1.5f, -2.0f};
  bytes += header + std::string(reinterpret_cast<const char*>(data), sizeof data);
  const WeightStore store = WeightStore::open({dir_.write("odd.safetensors", bytes)});
  const std::optional<WeightRef> ref = store.get("w");
  ASSERT_TRUE(ref.has_value());
  EXPECT_FALSE(ref->mapped) << "a realigned copy is not released by page dropping";
  EXPECT_EQ(values(ref->view), (std::vector<float>{1.5f, -2.0f}));
}

TEST_F(WeightSources, FileSourceNormalisesLegacyNamesAndSaysSo) {
  const Tensor w = iota({2, 2});
  const auto legacy = dir_ / "legacy.safetensors";
  write_safetensors(legacy, {{"decoder.mid_block.attentions.0.query.weight", w.view()}});
  const WeightStore store = WeightStore::open({legacy});
  EXPECT_EQ(store.names(), (std::vector<std::string>{"decoder.mid_block.attentions.0.to_q.weight"}));
  const std::optional<WeightRef> ref = store.get("decoder.mid_block.attentions.0.to_q.weight");
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->stored_as, "tensor 'decoder.mid_block.attentions.0.query.weight'");
  EXPECT_EQ(values(ref->view), values(w));
}

TEST(WeightRenameRule, ExactAndWildcardPatterns) {
  EXPECT_EQ(apply_rename({"a.b", "x.y"}, "a.b"), "x.y");
  EXPECT_EQ(apply_rename({"a.b", "x.y"}, "a.bc"), std::nullopt);
  EXPECT_EQ(apply_rename({"first_stage_model.*", "*"}, "first_stage_model.decoder.conv_in.weight"),
            "decoder.conv_in.weight");
  EXPECT_EQ(apply_rename({"m.*.q.weight", "*.to_q.weight"}, "m.encoder.mid.q.weight"), "encoder.mid.to_q.weight");
  EXPECT_EQ(apply_rename({"m.*.q.weight", "*.to_q.weight"}, "m.q.weight"), std::nullopt)
      << "prefix and suffix may not overlap";
  EXPECT_EQ(apply_rename({"a.*.w", "b.*.w"}, "a..w"), "b..w");  // the '*' may match nothing
}

TEST_F(WeightSources, RenamedSourceRenamesReshapesAndKeepsOrDropsTheRest) {
  const std::vector<WeightRename> rules = {
      {"first.*.q.weight", "vae.*.to_q.weight", 2},  // [4, 4, 1, 1] conv kernel -> [4, 4] matrix
      {"cond.ln.*", "text.final_layer_norm.*"},
  };
  const RenamedSource keep(file_, rules, RenamedSource::Unmatched::Keep);
  EXPECT_EQ(keep.names(), (std::vector<std::string>{"cond.attn.in_proj_bias", "cond.attn.in_proj_weight",
                                                    "text.final_layer_norm.weight", "vae.attn.to_q.weight"}));
  const std::optional<WeightRef> q = keep.get("vae.attn.to_q.weight");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->view.shape, Shape({4, 4}));
  EXPECT_EQ(values(q->view), values(iota({16})));
  EXPECT_TRUE(q->mapped) << "a reshape is a view of the same mapped bytes";
  EXPECT_EQ(q->view.data, file_->get("first.attn.q.weight")->view.data);
  EXPECT_EQ(q->stored_as, "tensor 'first.attn.q.weight' reshaped from [4, 4, 1, 1]");
  EXPECT_EQ(keep.get("text.final_layer_norm.weight")->stored_as, "tensor 'cond.ln.weight'");
  EXPECT_FALSE(keep.get("first.attn.q.weight").has_value()) << "renamed tensors leave their old names";
  EXPECT_EQ(keep.describe(), file_->describe());

  const RenamedSource drop(file_, rules, RenamedSource::Unmatched::Drop);
  EXPECT_EQ(drop.names(), (std::vector<std::string>{"text.final_layer_norm.weight", "vae.attn.to_q.weight"}));
  EXPECT_FALSE(drop.get("cond.attn.in_proj_weight").has_value());

  // A matrix can also become a 1x1 kernel.
  const RenamedSource up(file_, {{"cond.attn.in_proj_weight", "conv.weight", 4}});
  EXPECT_EQ(up.get("conv.weight")->view.shape, Shape({12, 4, 1, 1}));
}

TEST_F(WeightSources, RenamedSourceErrorsNameFileTensorsAndShapes) {
  const std::string clash = error_of([&] {
    RenamedSource(file_, {{"cond.attn.*", "same"}});
  });
  EXPECT_MENTIONS(clash, path_.string());
  EXPECT_MENTIONS(clash, "'cond.attn.in_proj_bias' and 'cond.attn.in_proj_weight' are both renamed to 'same'");

  const std::string rank = error_of([&] {
    RenamedSource(file_, {{"cond.attn.in_proj_weight", "w", 1}});
  });
  EXPECT_MENTIONS(rank, path_.string() + ": tensor 'cond.attn.in_proj_weight' is [12, 4], which cannot become rank 1");

  EXPECT_MENTIONS(error_of([&] { RenamedSource(file_, {{"a*b*", "x"}}); }), "at most one '*'");
  EXPECT_MENTIONS(error_of([&] { RenamedSource(file_, {{"a", "x*"}}); }), "at most one '*'");
}

TEST_F(WeightSources, SplitSourceServesRowsOfTheFusedTensorWithoutCopying) {
  const SplitSource split(file_,
                          {WeightSplit::even("cond.attn.in_proj_weight", {"q.weight", "k.weight", "v.weight"}, 4),
                           WeightSplit::even("cond.attn.in_proj_bias", {"q.bias", "k.bias", "v.bias"}, 4)});
  EXPECT_EQ(split.names(), (std::vector<std::string>{"cond.ln.weight", "first.attn.q.weight", "k.bias", "k.weight",
                                                     "q.bias", "q.weight", "v.bias", "v.weight"}));
  EXPECT_FALSE(split.get("cond.attn.in_proj_weight").has_value()) << "the fused tensor is served as its parts";
  const WeightRef fused = *file_->get("cond.attn.in_proj_weight");
  const WeightRef k = *split.get("k.weight");
  EXPECT_EQ(k.view.shape, Shape({4, 4}));
  EXPECT_EQ(values(k.view), values(iota({16}, 116)));
  EXPECT_EQ(k.view.data, static_cast<char*>(fused.view.data) + 16 * sizeof(float)) << "a view, not a copy";
  EXPECT_TRUE(k.mapped);
  EXPECT_EQ(k.stored_as, "rows [4, 8) of tensor 'cond.attn.in_proj_weight'");
  EXPECT_EQ(values(split.get("v.bias")->view), (std::vector<float>{208, 209, 210, 211}));
  EXPECT_EQ(values(split.get("cond.ln.weight")->view), (std::vector<float>{300, 301, 302}));
}

TEST_F(WeightSources, SplitSourceErrorsNameFileTensorAndRows) {
  const std::string range = error_of([&] {
    SplitSource(file_, {{"cond.attn.in_proj_weight", {{"q", 0, 4}, {"k", 10, 14}}}});
  });
  EXPECT_MENTIONS(range, path_.string() + ": tensor 'cond.attn.in_proj_weight' [12, 4] has 12 rows");
  EXPECT_MENTIONS(range, "part 'k' asks for rows [10, 14)");
  EXPECT_MENTIONS(error_of([&] { SplitSource(file_, {{"cond.attn.in_proj_weight", {{"q", 3, 3}}}}); }),
                  "asks for rows [3, 3)");
  const std::string absent = error_of([&] { SplitSource(file_, {WeightSplit::even("nope", {"a", "b"}, 2)}); });
  EXPECT_MENTIONS(absent, path_.string() + ": no tensor 'nope' to split");
  EXPECT_MENTIONS(
      error_of([&] { SplitSource(file_, {WeightSplit::even("cond.attn.in_proj_bias", {"cond.ln.weight"}, 4)}); }),
      "split part 'cond.ln.weight' would hide a tensor of the same name");
  EXPECT_MENTIONS(error_of([&] { SplitSource(file_, {WeightSplit::even("cond.attn.in_proj_bias", {"a", "a"}, 4)}); }),
                  "the part name 'a' is used twice");
}

TEST_F(WeightSources, OverlayReplacesNamesWithOwnedCopies) {
  Tensor merged = copy_weight(*file_, "cond.ln.weight", DType::F32);
  for (int i = 0; i < 3; ++i) merged.f32()[i] += 0.5f;
  std::vector<std::pair<std::string, Tensor>> owned;
  owned.emplace_back("cond.ln.weight", std::move(merged));
  auto overlay = std::make_shared<OverlaySource>(file_, std::move(owned));
  EXPECT_EQ(overlay->names(), file_->names());
  EXPECT_EQ(overlay->describe(), file_->describe() + " with 1 owned copy");
  EXPECT_EQ(overlay->mapped_files().size(), 1u);

  std::optional<WeightRef> ref = overlay->get("cond.ln.weight");
  ASSERT_TRUE(ref.has_value());
  EXPECT_FALSE(ref->mapped);
  EXPECT_FALSE(in_mapping(ref->view.data, *file_->mapped_files()[0]));
  EXPECT_EQ(ref->stored_as, "an owned copy of 'cond.ln.weight'");
  EXPECT_TRUE(overlay->get("first.attn.q.weight")->mapped) << "names not replaced come from the file";
  overlay.reset();
  EXPECT_EQ(values(ref->view), (std::vector<float>{300.5f, 301.5f, 302.5f})) << "the reference keeps the copy alive";
}

TEST_F(WeightSources, OverlayErrorsNameTheTensorExpectedAndGot) {
  auto overlay_of = [&](std::string name, Tensor t) {
    std::vector<std::pair<std::string, Tensor>> owned;
    owned.emplace_back(std::move(name), std::move(t));
    return OverlaySource(file_, std::move(owned));
  };
  EXPECT_MENTIONS(error_of([&] { overlay_of("typo.weight", iota({3})); }),
                  path_.string() + ": an owned copy of 'typo.weight' replaces no tensor of it");
  const std::string shape = error_of([&] { overlay_of("cond.ln.weight", iota({4})); });
  EXPECT_MENTIONS(shape, "owned copy of 'cond.ln.weight': expected a floating-point tensor of shape [3]");
  EXPECT_MENTIONS(shape, "got F32 [4]");
  Tensor ints = Tensor::zeros({3}, DType::I64);
  EXPECT_MENTIONS(error_of([&] { overlay_of("cond.ln.weight", std::move(ints)); }), "got I64 [3]");
  EXPECT_MENTIONS(error_of([&] { copy_weight(*file_, "nope", DType::F32); }), "no tensor 'nope'");
}

// A single-file layout in miniature: the file's fused projection split, then everything renamed.
TEST_F(WeightSources, RenameOverSplitOverFile) {
  auto split = std::make_shared<SplitSource>(
      file_, std::vector<WeightSplit>{
                 WeightSplit::even("cond.attn.in_proj_weight",
                                   {"cond.attn.q.weight", "cond.attn.k.weight", "cond.attn.v.weight"}, 4),
                 WeightSplit::even("cond.attn.in_proj_bias",
                                   {"cond.attn.q.bias", "cond.attn.k.bias", "cond.attn.v.bias"}, 4)});
  const RenamedSource renamed(split,
                              {{"cond.attn.*.weight", "text.self_attn.*_proj.weight"},
                               {"cond.attn.*.bias", "text.self_attn.*_proj.bias"},
                               {"first.attn.q.weight", "vae.to_q.weight", 2}},
                              RenamedSource::Unmatched::Drop);
  EXPECT_EQ(renamed.names(),
            (std::vector<std::string>{"text.self_attn.k_proj.bias", "text.self_attn.k_proj.weight",
                                      "text.self_attn.q_proj.bias", "text.self_attn.q_proj.weight",
                                      "text.self_attn.v_proj.bias", "text.self_attn.v_proj.weight",
                                      "vae.to_q.weight"}));
  const WeightRef v = *renamed.get("text.self_attn.v_proj.weight");
  EXPECT_EQ(values(v.view), values(iota({16}, 132)));
  EXPECT_EQ(v.stored_as, "rows [8, 12) of tensor 'cond.attn.in_proj_weight'") << "the file's name, not the split's";
  EXPECT_EQ(renamed.get("vae.to_q.weight")->view.shape, Shape({4, 4}));
  EXPECT_EQ(renamed.mapped_files().size(), 1u);
}

}  // namespace
}  // namespace kakusan
