// The one weight walk's loader against the weight sources: what it borrows (zero copy from a mapping, or a
// source's owned copy) and what it copies, and that an overlay's merged copy survives page dropping while the
// mapped parameters are released and come back from the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "io/safetensors.h"
#include "io/weight_overlay.h"
#include "io/weight_rename.h"
#include "io/weight_split.h"
#include "io/weight_store.h"
#include "nn/weights.h"

namespace kakusan {
namespace {

struct TinyLinear {
  TinyLinear(int64_t in, int64_t out) : in(in), out(out) {}
  int64_t in, out;
  Tensor weight, bias;
  void visit(WeightVisitor& v) {
    v("weight", weight, {out, in});
    v("bias", bias, {out});
  }
};

// Two layers; `proj` is big enough to span many pages.
struct TinyNet {
  TinyLinear proj{1024, 64};
  TinyLinear head{64, 4};
  void visit(WeightVisitor& v) {
    v.child("proj", proj);
    v.child("head", head);
  }
};

Tensor iota(Shape shape, float first, DType dtype = DType::F32) {
  Tensor t = Tensor::empty(shape);
  std::iota(t.f32(), t.f32() + t.numel(), first);
  return t.to(dtype);
}

bool in_mapping(const Tensor& t, const WeightSource& source) {
  const auto* byte = static_cast<const std::byte*>(t.data());
  for (const std::shared_ptr<const MappedFile>& file : source.mapped_files())
    if (byte >= file->data() && byte < file->data() + file->size()) return true;
  return false;
}

// Resident kilobytes of the mapping that holds `address`, from /proc/self/smaps (-1 when not found).
int64_t resident_kb_of_mapping(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') inside = at >= lo && at < hi;
    else if (inside && line.rfind("Rss:", 0) == 0) return std::stoll(line.substr(4));
  }
  return -1;
}

// Element i of `t` equals first + i (+ delta) for every i.
::testing::AssertionResult holds_iota(const Tensor& t, float first, float delta = 0) {
  const Tensor f = t.to_f32();
  for (int64_t i = 0; i < f.numel(); ++i)
    if (f.f32()[i] != first + float(i) + delta)
      return ::testing::AssertionFailure() << "element " << i << " is " << f.f32()[i] << ", expected "
                                           << first + float(i) + delta;
  return ::testing::AssertionSuccess();
}

class WeightLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kakusan-test-loader-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The TinyNet checkpoint: proj.weight = 0, 1, 2, ...; proj.bias from 1e5; head from 2e5 / 3e5 (exact in
  // float32; f16 files hold these values rounded).
  std::shared_ptr<const WeightStore> write_net(DType dtype = DType::F32) {
    const Tensor pw = iota({64, 1024}, 0, dtype), pb = iota({64}, 1e5, dtype), hw = iota({4, 64}, 2e5, dtype),
                 hb = iota({4}, 3e5, dtype);
    const auto path = dir_ / "net.safetensors";
    write_safetensors(path, {{"proj.weight", pw.view()}, {"proj.bias", pb.view()}, {"head.weight", hw.view()},
                             {"head.bias", hb.view()}});
    return std::make_shared<WeightStore>(WeightStore::open({path}));
  }

  std::filesystem::path dir_;
};

// A LoRA-style merge lands in an owned copy: dropping the file's pages releases the mapped parameters (they
// come back from the file on the next read) and leaves the merged values as they are.
TEST_F(WeightLoading, OverlayMergedCopySurvivesPageDropping) {
  const std::shared_ptr<const WeightStore> file = write_net();
  Tensor merged = copy_weight(*file, "proj.weight", DType::F32);
  for (int64_t i = 0; i < merged.numel(); ++i) merged.f32()[i] += 0.25f;
  std::vector<std::pair<std::string, Tensor>> owned;
  owned.emplace_back("proj.weight", std::move(merged));
  const OverlaySource overlay(file, std::move(owned));

  TinyNet net;
  WeightLoader loader(overlay, DType::F32);
  net.visit(loader);
  loader.finish("TinyNet");

  EXPECT_FALSE(in_mapping(net.proj.weight, overlay)) << "the merged weight is the overlay's copy";
  EXPECT_TRUE(in_mapping(net.head.weight, overlay)) << "the rest stays zero copy";
  EXPECT_TRUE(in_mapping(net.proj.bias, overlay));
  EXPECT_EQ(loader.owned_bytes(), int64_t(net.proj.weight.nbytes()));
  EXPECT_EQ(loader.mapped_bytes(),
            int64_t(net.proj.bias.nbytes() + net.head.weight.nbytes() + net.head.bias.nbytes()));

  for (const std::shared_ptr<const MappedFile>& mapping : overlay.mapped_files()) mapping->drop_pages();
  EXPECT_TRUE(holds_iota(net.proj.weight, 0, 0.25f)) << "the merge survives page dropping";
  EXPECT_TRUE(holds_iota(net.head.weight, 2e5)) << "mapped weights fault back in from the file";
  EXPECT_TRUE(holds_iota(net.head.bias, 3e5));
}

TEST_F(WeightLoading, MatchingDtypesBorrowOthersAreConvertedCopies) {
  const std::shared_ptr<const WeightStore> file = write_net(DType::F16);
  TinyNet kept;
  WeightLoader f16(*file, DType::F16);
  kept.visit(f16);
  f16.finish("TinyNet");
  EXPECT_EQ(kept.proj.weight.dtype(), DType::F16);
  EXPECT_TRUE(in_mapping(kept.proj.weight, *file));
  EXPECT_EQ(kept.proj.bias.dtype(), DType::F32) << "vectors are always float32";
  EXPECT_FALSE(in_mapping(kept.proj.bias, *file));
  EXPECT_EQ(f16.mapped_bytes(), int64_t(kept.proj.weight.nbytes() + kept.head.weight.nbytes()));
  EXPECT_EQ(f16.owned_bytes(), int64_t(kept.proj.bias.nbytes() + kept.head.bias.nbytes()));

  TinyNet widened;
  load_weights(widened, *file, DType::F32, "TinyNet");
  EXPECT_EQ(widened.proj.weight.dtype(), DType::F32);
  EXPECT_FALSE(in_mapping(widened.proj.weight, *file));
  const Tensor want = copy_weight(*file, "head.weight", DType::F32);
  EXPECT_EQ(std::memcmp(widened.head.weight.data(), want.data(), want.nbytes()), 0);
}

// Converting a mapped tensor (an fp16 file run in f32 or bf16) releases the file's pages of it as it goes:
// loading never holds the file and the converted model at once, and the mapping ends up (almost) empty.
TEST_F(WeightLoading, ConvertedTensorsReleaseTheirFilePages) {
  const std::shared_ptr<const WeightStore> file = write_net(DType::F16);
  const std::shared_ptr<const MappedFile> mapping = file->mapped_files().at(0);
  volatile std::byte sink{};
  for (size_t i = 0; i < mapping->size(); i += 512) sink = mapping->data()[i];  // fault every page in
  (void)sink;
  const int64_t file_kb = int64_t(mapping->size() / 1024);
  ASSERT_GE(resident_kb_of_mapping(mapping->data()), file_kb) << "the whole file is resident before loading";

  TinyNet net;
  load_weights(net, *file, DType::BF16, "TinyNet");  // every tensor converted: matrices to bf16, vectors to f32
  // What may stay: the header's page and pages shared by two tensors' ends (whole pages only are dropped).
  EXPECT_LE(resident_kb_of_mapping(mapping->data()), 5 * 4) << "of a " << file_kb << " KB file";
  EXPECT_EQ(net.proj.weight.to_f32().f32()[1000], 1000.0f) << "the copies keep the values";
}

// Renamed and split tensors load like the file's own, and problems name how the file stores them.
TEST_F(WeightLoading, ComposedSourcesLoadAndExplainMismatches) {
  const Tensor fused = iota({68, 1024}, 0), bias = iota({68}, 1e5), head_bias = iota({4}, 3e5);
  const auto path = dir_ / "single_file.safetensors";
  write_safetensors(path, {{"model.fused.weight", fused.view()},
                           {"model.fused.bias", bias.view()},
                           {"model.head_bias", head_bias.view()},
                           {"other.component", head_bias.view()}});
  auto file = std::make_shared<WeightStore>(WeightStore::open({path}));
  // rows [0, 64) are proj, rows [64, 68) of a 1024-wide matrix are not a [4, 64] head: reported, not bound.
  auto split = std::make_shared<SplitSource>(
      file, std::vector<WeightSplit>{
                {"model.fused.weight", {{"model.proj.weight", 0, 64}, {"model.head.weight", 64, 68}}},
                {"model.fused.bias", {{"model.proj.bias", 0, 64}, {"model.extra", 64, 68}}}});
  const RenamedSource source(split, {{"model.head_bias", "head.bias"}, {"model.*", "*"}},
                             RenamedSource::Unmatched::Drop);

  TinyNet net;
  WeightLoader loader(source, DType::F32);
  net.visit(loader);
  EXPECT_TRUE(holds_iota(net.proj.weight, 0));
  EXPECT_TRUE(in_mapping(net.proj.weight, source)) << "a split part is a view of the mapping";
  EXPECT_TRUE(holds_iota(net.proj.bias, 1e5));
  EXPECT_TRUE(holds_iota(net.head.bias, 3e5));
  // A renamed layout (a single file) reports its first problem on one line, under the model's name and the
  // file's.
  try {
    loader.finish("TinyNet");
    FAIL() << "a mis-shaped part and an unused one must be reported";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message, "TinyNet (" + path.string() + "): tensor 'head.weight' (rows [64, 68) of tensor "
                       "'model.fused.weight') has shape [4, 1024] but the config implies [4, 64]");
  }
  // A tensor the file lacks is named as the file would name it (the rename rules read backwards).
  EXPECT_EQ(source.stored_name("head.weight"), "model.fused.weight");
  EXPECT_EQ(source.stored_name("blocks.3.weight"), "model.blocks.3.weight");
  EXPECT_EQ(file->stored_name("model.fused.weight"), std::nullopt) << "a plain file keeps its names";
}

}  // namespace
}  // namespace kakusan
