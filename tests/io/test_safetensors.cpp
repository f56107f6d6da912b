// The safetensors reader on hostile input: every malformed file must give a clean kakusan::Error that
// names the file, never a crash. Plus round trips through write_safetensors.
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "io/scratch_dir.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(v >> (8 * i)));
  return s;
}

// A safetensors image: length prefix, header text, data.
std::string image(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

SafetensorsFile parse(const std::string& bytes) { return SafetensorsFile::parse(MappedFile::from_bytes(bytes, "evil.safetensors")); }

// The error message parsing `bytes` gives ("" if it parsed).
std::string error_of(const std::string& bytes) {
  try {
    parse(bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Expects a clean Error that names the file and contains `needle`.
#define EXPECT_REJECTED(bytes, needle)                                                   \
  do {                                                                                   \
    const std::string message = error_of(bytes);                                         \
    EXPECT_NE(message.find("evil.safetensors"), std::string::npos) << "'" << message << "'"; \
    EXPECT_NE(message.find(needle), std::string::npos) << "'" << message << "'";           \
  } while (0)

const std::string k8Bytes(8, '\x01');

TEST(SafetensorsHostile, TruncatedFiles) {
  EXPECT_REJECTED("", "shorter than");
  EXPECT_REJECTED("\x10\x00\x00", "shorter than");
  const std::string good = image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", k8Bytes);
  EXPECT_EQ(error_of(good), "");
  for (size_t cut = 0; cut < good.size(); ++cut) EXPECT_NE(error_of(good.substr(0, cut)), "") << "cut at " << cut;
}

TEST(SafetensorsHostile, HeaderLength) {
  EXPECT_REJECTED(le64(uint64_t(1) << 63) + "{}", "100 MB");
  EXPECT_REJECTED(le64(~uint64_t(0)) + "{}", "100 MB");
  EXPECT_REJECTED(le64(kMaxSafetensorsHeader + 1), "100 MB");
  EXPECT_REJECTED(le64(100) + "{}", "truncated");
  EXPECT_REJECTED(le64(0), "JSON");  // an empty header is not JSON
}

TEST(SafetensorsHostile, HeaderIsNotAnObject) {
  EXPECT_REJECTED(image("this is not json"), "not valid JSON");
  EXPECT_REJECTED(image("{\"a\": "), "not valid JSON");
  EXPECT_REJECTED(image("{} trailing"), "not valid JSON");
  EXPECT_REJECTED(image(std::string("{\"a\xff\": 1}")), "not valid JSON");  // invalid UTF-8
  EXPECT_REJECTED(image("[1, 2, 3]"), "not a JSON object");
  EXPECT_REJECTED(image("\"text\""), "not a JSON object");
  EXPECT_REJECTED(image("null"), "not a JSON object");
}

TEST(SafetensorsHostile, DeeplyNestedJsonDoesNotCrash) {
  const int depth = 200000;
  const std::string nested = "{\"a\":" + std::string(depth, '[') + std::string(depth, ']') + "}";
  EXPECT_REJECTED(image(nested), "'a'");
}

TEST(SafetensorsHostile, BadEntries) {
  EXPECT_REJECTED(image(R"({"a":[1,2]})"), "not a JSON object");
  EXPECT_REJECTED(image(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", k8Bytes), "dtype");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", k8Bytes), "unsupported dtype \"Q4\"");
  EXPECT_REJECTED(image(R"({"a":{"dtype":5,"shape":[2],"data_offsets":[0,8]}})", k8Bytes), "dtype");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", k8Bytes), "shape");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", k8Bytes), "shape");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2]}})", k8Bytes), "data_offsets");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", k8Bytes), "data_offsets");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":"0-8"}})", k8Bytes), "data_offsets");
}

TEST(SafetensorsHostile, BadDimensions) {
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", k8Bytes), "non-negative integer");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", k8Bytes), "non-negative integer");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})", k8Bytes), "non-negative integer");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", k8Bytes), "non-negative integer");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[null],"data_offsets":[0,8]}})", k8Bytes), "non-negative integer");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,2],"data_offsets":[0,8]}})", k8Bytes), "rank 8");
  // Products that overflow 64 bits, in the dims and in dims x dtype size.
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", k8Bytes),
                  "overflows");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", k8Bytes),
                  "overflows");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,8]}})", k8Bytes),
                  "overflows");
}

TEST(SafetensorsHostile, ZeroSizedShapesWithHugeOtherDims) {
  // numel is 0, but strides (and any loop over the other dims) would overflow int64.
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})"),
                  "too large");
  EXPECT_EQ(error_of(image(R"({"a":{"dtype":"F32","shape":[0,1000000,1000],"data_offsets":[0,0]}})")), "");
}

TEST(SafetensorsFile, UnpaddedHeadersGiveAlignedViews) {
  // Old writers did not pad the header, so tensor bytes may start at any address; views must still be
  // aligned to the element size (kernels read them as typed arrays) and hold the right values.
  const float values[3] = {1.5f, -2.0f, 3.25f};
  const std::string data(reinterpret_cast<const char*>(values), sizeof values);
  for (int pad = 0; pad < 8; ++pad) {
    const std::string header = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})" + std::string(size_t(pad), ' ');
    const SafetensorsFile f = parse(image(header, data));
    const TensorView v = f.view("a");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % 4, 0u) << "pad " << pad;
    EXPECT_EQ(v.f32()[2], 3.25f) << "pad " << pad;
    Tensor kept = f.borrow("a");
    EXPECT_EQ(kept.f32()[1], -2.0f);
  }
}

TEST(SafetensorsHostile, ByteRanges) {
  // shape x dtype disagrees with the range
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", k8Bytes), "needs 12");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}})", k8Bytes), "needs 4");
  // past the end of the data
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", k8Bytes), "past the end");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})",
                        k8Bytes),
                  "past the end");
  // negative, float, reversed offsets
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", k8Bytes), "non-negative");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0.0,8.0]}})", k8Bytes), "non-negative");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", k8Bytes), "reversed");
}

TEST(SafetensorsHostile, LayoutOfTheDataSection) {
  const std::string data16(16, '\x02');
  // overlapping ranges
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                           "b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data16),
                  "overlaps");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                           "b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", k8Bytes),
                  "overlaps");
  // a gap between tensors, before the first, and unused bytes after the last
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                           "b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data16),
                  "gap of 4");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data16), "gap of 8");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data16), "8 bytes after");
  EXPECT_REJECTED(image("{}", k8Bytes), "8 bytes after");
}

TEST(SafetensorsHostile, DuplicateNames) {
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                           "a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", k8Bytes),
                  "'a' appears twice");
  // Nested duplicate keys (inside an entry) are not tensor names; the last one wins, as in JSON parsers.
  EXPECT_EQ(error_of(image(R"({"a":{"dtype":"F16","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", k8Bytes)), "");
}

TEST(SafetensorsHostile, Metadata) {
  const std::string header = R"({"__metadata__":{"format":"pt","note":"hi"},
                                 "b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
  const SafetensorsFile f = parse(image(header, k8Bytes));
  EXPECT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.entries().size(), 1u);  // __metadata__ is not a tensor
  EXPECT_FALSE(f.contains("__metadata__"));
  EXPECT_REJECTED(image(R"({"__metadata__":["x"]})"), "__metadata__");
  EXPECT_REJECTED(image(R"({"__metadata__":{"n":1}})"), "'n' is not a string");
}

TEST(SafetensorsHostile, EmptyAndZeroSizedTensors) {
  EXPECT_EQ(parse(image("{}")).entries().size(), 0u);
  const SafetensorsFile f = parse(image(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},
                                           "s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
                                        std::string(4, '\0')));
  ASSERT_EQ(f.entries().size(), 2u);
  EXPECT_EQ(f.view("e").numel(), 0);
  EXPECT_EQ(f.view("s").rank(), 0);
  EXPECT_EQ(f.view("s").numel(), 1);
}

TEST(SafetensorsHostile, MissingTensorAndWrongDtype) {
  const SafetensorsFile f = parse(image(R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", k8Bytes));
  try {
    f.view("nope");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos);
  }
  EXPECT_THROW(f.load_f32("i"), Error);
}

TEST(SafetensorsHostile, RandomCorruptionNeverCrashes) {
  // Flip bytes of a valid file all over the header: every outcome must be a parsed file or an Error.
  const std::string good = image(R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]}})",
                                 std::string(16, '\x03'));
  uint32_t state = 12345;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good;
    for (int k = 0; k < 1 + trial % 4; ++k) {
      state = state * 1664525u + 1013904223u;
      bad[(state >> 8) % bad.size()] = char(state >> 24);
    }
    try {
      parse(bad);
    } catch (const Error&) {
    }
  }
}

TEST(SafetensorsFile, OpenErrors) {
  ScratchDir dir;
  EXPECT_THROW(SafetensorsFile::open(dir / "missing.safetensors"), Error);
  EXPECT_THROW(SafetensorsFile::open(dir.path()), Error);  // a folder
  const fs::path empty = dir.write("empty.safetensors", "");
  try {
    SafetensorsFile::open(empty);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty.safetensors"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsWrite, RoundTripAllDtypesAndStridedViews) {
  ScratchDir dir;
  Tensor f = Tensor::empty(Shape{2, 3});
  for (int i = 0; i < 6; ++i) f.f32()[i] = float(i) * 0.5f - 1.0f;
  Tensor h = f.to(DType::F16), b = f.to(DType::BF16);
  Tensor ids = Tensor::empty(Shape{4}, DType::I64);
  for (int i = 0; i < 4; ++i) ids.i64()[i] = int64_t(1) << (10 * i);
  const TensorView transposed = f.view().permute({1, 0});  // written densely, in the permuted order
  const fs::path path = dir / "out.safetensors";
  write_safetensors(path, {{"f", f}, {"h", h}, {"b", b}, {"ids", ids}, {"t", transposed}},
                    {{"format", "pt"}, {"who", "kakusan"}});

  const SafetensorsFile in = SafetensorsFile::open(path);
  EXPECT_EQ(in.metadata().at("who"), "kakusan");
  ASSERT_EQ(in.entries().size(), 5u);
  // entries() is in data order, i.e. the order written.
  EXPECT_EQ(in.entries()[0].name, "f");
  EXPECT_EQ(in.entries()[4].name, "t");
  EXPECT_EQ(in.view("h").dtype, DType::F16);
  EXPECT_EQ(in.view("b").dtype, DType::BF16);
  KK_EXPECT_CLOSE(in.view("f"), f, {});
  KK_EXPECT_CLOSE(in.load_f32("h"), f, {});  // these values are exact in f16 and bf16
  KK_EXPECT_CLOSE(in.load_f32("b"), f, {});
  KK_EXPECT_CLOSE(in.view("ids"), ids, {});
  EXPECT_EQ(in.view("t").shape, (Shape{3, 2}));
  KK_EXPECT_CLOSE(in.view("t"), Tensor::copy_of(transposed), {});
  // The data section starts 8-byte aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(in.view("f").data) % 8, 0u);
  // A borrowed tensor keeps the mapping alive after the file object is gone.
  Tensor kept = SafetensorsFile::open(path).borrow("ids");
  EXPECT_EQ(kept.i64()[3], int64_t(1) << 30);
}

TEST(SafetensorsWrite, IsAtomic) {
  ScratchDir dir;
  const fs::path path = dir / "out.safetensors";
  Tensor t = Tensor::zeros(Shape{2});
  // Duplicate names: refused before anything is written; no file, no temporary left behind.
  EXPECT_THROW(write_safetensors(path, {{"x", t}, {"x", t}}), Error);
  EXPECT_TRUE(fs::is_empty(dir.path()));
  // A successful write replaces an old file as a whole.
  dir.write("out.safetensors", "old contents");
  write_safetensors(path, {{"x", t}});
  EXPECT_EQ(SafetensorsFile::open(path).entries().size(), 1u);
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u);
  // A folder that does not exist: an Error naming the target.
  try {
    write_safetensors(dir / "no/such/dir/x.safetensors", {{"x", t}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsGolden, KitUnetFileParses) {
  KK_REQUIRE_GOLDEN();
  const SafetensorsFile f = SafetensorsFile::open(*testing::golden_dir() / "tiny-sd/unet/diffusion_pytorch_model.safetensors");
  EXPECT_GT(f.entries().size(), 100u);
  const auto* conv_in = f.find("conv_in.weight");
  ASSERT_NE(conv_in, nullptr);
  EXPECT_EQ(conv_in->shape, (Shape{32, 4, 3, 3}));
  EXPECT_EQ(conv_in->dtype, DType::F32);
}

}  // namespace
}  // namespace kakusan
