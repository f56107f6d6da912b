// Tensor / TensorView: construction, strided views (narrow, permute, slice0, operator[]) and copies.
#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/half.h"

namespace kakusan {
namespace {

// A [2, 3, 4] float tensor holding 0, 1, 2, ... in row-major order.
Tensor iota(Shape shape) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float(i);
  return t;
}

// Element at a multi-index of any view, via its strides.
float at(const TensorView& v, std::initializer_list<int64_t> index) {
  int64_t offset = 0;
  int d = 0;
  for (int64_t i : index) offset += i * v.strides[d++];
  return v.f32()[offset];
}

TEST(Tensor, ConstructionAndShape) {
  const Tensor z = Tensor::zeros(Shape{2, 3});
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.nbytes(), 24u);
  EXPECT_EQ(z.rank(), 2);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(z.f32()[i], 0.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(z.data()) % 64, 0u);
  const Tensor f = Tensor::full(Shape{5}, 2.5f);
  EXPECT_EQ(f.f32()[4], 2.5f);
  const Tensor i = Tensor::zeros(Shape{3}, DType::I64);
  EXPECT_EQ(i.nbytes(), 24u);
  EXPECT_EQ(Shape({2, 3, 4}).dim(-1), 4);
  EXPECT_EQ(Shape({2, 3, 4}).str(), "[2, 3, 4]");
  EXPECT_EQ(contiguous_strides(Shape{2, 3, 4}), (Shape{12, 4, 1}));
  const Tensor scalar = Tensor::full(Shape{}, 1.0f);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(Tensor::empty(Shape{0, 5}).numel(), 0);
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, BadShapesAreErrors) {
  EXPECT_THROW(Tensor::empty(Shape{-1, 3}), Error);
  // numel * element size beyond the address space must not wrap into a small allocation.
  const int64_t big = int64_t(1) << 40;
  EXPECT_THROW(Tensor::empty(Shape{big, big}), Error);
  EXPECT_THROW(Tensor::empty(Shape{int64_t(1) << 61}, DType::I64), Error);
  EXPECT_THROW(Tensor::empty(Shape{0, big, big}), Error);  // strides would overflow even with numel 0
}

TEST(Tensor, Narrow) {
  const Tensor t = iota(Shape{2, 3, 4});
  const TensorView n = t.view().narrow(2, 1, 2);  // [2, 3, 2], columns 1..2
  EXPECT_EQ(n.shape, (Shape{2, 3, 2}));
  EXPECT_EQ(n.strides, (Shape{12, 4, 1}));
  EXPECT_FALSE(n.is_contiguous());
  EXPECT_EQ(at(n, {1, 2, 0}), 12 + 8 + 1);
  const Tensor c = Tensor::copy_of(n);
  EXPECT_TRUE(c.view().is_contiguous());
  const float want[] = {1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(c.f32()[i], want[i]) << i;
  // Narrowing the outermost dimension stays contiguous.
  const TensorView rows = t.view().narrow(0, 1, 1);
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(rows.f32()[0], 12.0f);
  EXPECT_EQ(t.view().narrow(1, 3, 0).numel(), 0);  // empty at the end is allowed
}

TEST(Tensor, Permute) {
  const Tensor t = iota(Shape{2, 3, 4});
  const TensorView p = t.view().permute({2, 0, 1});  // [4, 2, 3]
  EXPECT_EQ(p.shape, (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides, (Shape{1, 12, 4}));
  for (int64_t a = 0; a < 4; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(at(p, {a, b, c}), float(b * 12 + c * 4 + a));
  const Tensor c = Tensor::copy_of(p);
  for (int64_t a = 0; a < 4; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(c.f32()[(a * 2 + b) * 3 + k], float(b * 12 + k * 4 + a));
  // NCHW -> NHWC, the pipeline's image layout change.
  const Tensor nchw = iota(Shape{1, 3, 2, 2});
  const Tensor nhwc = Tensor::copy_of(nchw.view().permute({0, 2, 3, 1}));
  const float want[] = {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(nhwc.f32()[i], want[i]) << i;
  // Identity permutation is contiguous; a permute of a permute composes.
  EXPECT_TRUE(t.view().permute({0, 1, 2}).is_contiguous());
  EXPECT_TRUE(p.permute({1, 2, 0}).is_contiguous());
}

TEST(Tensor, Slice0AndIndex) {
  const Tensor t = iota(Shape{4, 3});
  const TensorView s = t.view().slice0(1, 3);
  EXPECT_EQ(s.shape, (Shape{2, 3}));
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.f32()[0], 3.0f);
  const TensorView row = t.view()[2];
  EXPECT_EQ(row.shape, (Shape{3}));
  EXPECT_EQ(row.f32()[1], 7.0f);
  // Index into a permuted view: column 1 of t.
  const TensorView col = t.view().permute({1, 0})[1];
  EXPECT_EQ(col.shape, (Shape{4}));
  EXPECT_EQ(col.strides, (Shape{3}));
  const Tensor cc = Tensor::copy_of(col);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(cc.f32()[i], float(i * 3 + 1));
  EXPECT_EQ(t.view().slice0(2, 2).numel(), 0);
}

TEST(Tensor, ReshapeAndBorrow) {
  Tensor t = iota(Shape{2, 6});
  const TensorView r = t.view().reshape(Shape{3, 4});
  EXPECT_EQ(r.f32()[5], 5.0f);
  t.reshape_(Shape{12});
  EXPECT_EQ(t.shape(), (Shape{12}));
  auto owner = std::make_shared<std::vector<float>>(6, 1.5f);
  const Tensor b = Tensor::borrow(TensorView(owner->data(), Shape{2, 3}), owner);
  owner.reset();  // the tensor keeps the storage alive
  EXPECT_EQ(b.f32()[5], 1.5f);
  // Moves transfer ownership; clone() copies.
  Tensor moved = std::move(t);
  EXPECT_TRUE(moved.defined());
  Tensor copy = moved.clone();
  copy.f32()[0] = 99;
  EXPECT_EQ(moved.f32()[0], 0.0f);
}

TEST(Tensor, DtypeConversions) {
  Tensor t = Tensor::empty(Shape{2, 3});
  const float values[] = {0.0f, -1.5f, 65504.0f, 1e-8f, 3.14159f, -0.0f};
  for (int i = 0; i < 6; ++i) t.f32()[i] = values[i];
  const Tensor h = t.to(DType::F16);
  const Tensor b = t.to(DType::BF16);
  EXPECT_EQ(h.dtype(), DType::F16);
  EXPECT_EQ(h.nbytes(), 12u);
  const Tensor hb = h.to(DType::BF16);  // f16 -> bf16 goes through f32
  const Tensor back = h.to_f32();
  EXPECT_EQ(back.f32()[2], 65504.0f);
  EXPECT_EQ(back.f32()[1], -1.5f);
  EXPECT_NEAR(back.f32()[4], 3.14159f, 1e-3f);
  EXPECT_NEAR(b.to_f32().f32()[4], 3.14159f, 2e-2f);
  EXPECT_EQ(hb.to_f32().f32()[1], -1.5f);
  // A strided f16 view converts in its logical order.
  const Tensor tr = Tensor::copy_of(h.view().permute({1, 0})).to_f32();
  EXPECT_EQ(tr.f32()[1], -0.0f);
  EXPECT_EQ(tr.f32()[2], -1.5f);
  const Tensor ids = Tensor::zeros(Shape{2}, DType::I64);
  EXPECT_THROW(ids.to(DType::F32), Error);
  EXPECT_EQ(ids.to(DType::I64).dtype(), DType::I64);
}

// f16 <-> bf16 converts a block at a time through f32, a large tensor in chunks across the threads: every bit
// pattern (and a partial last block) as the element-by-element composition of the scalar rules, NaN as NaN.
TEST(Tensor, HalfToBfloatConversionsMatchTheScalarRules) {
  for (const int64_t n : {int64_t(65536) + 5, (int64_t(1) << 21) + 7}) {
    for (const DType from : {DType::F16, DType::BF16}) {
      const DType to = from == DType::F16 ? DType::BF16 : DType::F16;
      Tensor t = Tensor::empty(Shape{n}, from);
      auto* bits = static_cast<uint16_t*>(t.view().data);
      for (int64_t i = 0; i < n; ++i) bits[i] = uint16_t(i * 40503);  // every pattern, in a scrambled order
      const Tensor got = t.to(to);
      const auto* out = static_cast<const uint16_t*>(got.view().data);
      int64_t wrong = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float wide = from == DType::F16 ? f16_to_f32(bits[i]) : bf16_to_f32(bits[i]);
        const uint16_t want = to == DType::F16 ? f32_to_f16(wide) : f32_to_bf16(wide);
        const float got_wide = to == DType::F16 ? f16_to_f32(out[i]) : bf16_to_f32(out[i]);
        if (std::isnan(wide) ? !std::isnan(got_wide) : out[i] != want) ++wrong;
      }
      EXPECT_EQ(wrong, 0) << n << " elements, " << dtype_name(from) << " -> " << dtype_name(to);
    }
  }
}

TEST(Tensor, CopyOfBroadcastAndEmptyViews) {
  float one = 7.0f;
  const TensorView broadcast(&one, DType::F32, Shape{2, 3}, Shape{0, 0});
  const Tensor c = Tensor::copy_of(broadcast);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c.f32()[i], 7.0f);
  const Tensor t = iota(Shape{3, 4});
  const Tensor empty = Tensor::copy_of(t.view().permute({1, 0}).narrow(1, 0, 0));
  EXPECT_EQ(empty.numel(), 0);
  // A 64-bit integer view copies bit-exactly.
  Tensor ids = Tensor::empty(Shape{2, 2}, DType::I64);
  for (int i = 0; i < 4; ++i) ids.i64()[i] = (int64_t(1) << 60) + i;
  const Tensor idt = Tensor::copy_of(ids.view().permute({1, 0}));
  EXPECT_EQ(idt.i64()[1], (int64_t(1) << 60) + 2);
}

TEST(Tensor, PlacementTravelsWithViews) {
  float storage[24] = {};
  const Device device = Device::backend(3);
  const TensorView v(storage, DType::F32, device, Shape{2, 3, 4});
  EXPECT_FALSE(v.on_host());
  EXPECT_EQ(v.slice0(1, 2).device, device);
  EXPECT_EQ(v[1].device, device);
  EXPECT_EQ(v.narrow(2, 1, 2).device, device);
  EXPECT_EQ(v.permute({2, 0, 1}).device, device);
  EXPECT_EQ(v.reshape({6, 4}).device, device);
  EXPECT_EQ(v.as_strided({2, 3}, {0, 1}).device, device);
  const Tensor t = Tensor::borrow(v, nullptr);
  EXPECT_EQ(t.device(), device);
  EXPECT_EQ(t.view().device, device);
  EXPECT_TRUE(Tensor::empty({2}).view().on_host());
  EXPECT_EQ(device.str(), "device:3");
  // The device field sits in the padding after dtype: a view costs what it did.
  EXPECT_EQ(sizeof(TensorView), sizeof(void*) + 8 + 2 * sizeof(Shape));
}

TEST(TensorDeathTest, HostAccessorsRefuseDeviceMemory) {
  float storage[4] = {};
  const TensorView v(storage, DType::F32, Device::backend(0), Shape{4});
  EXPECT_DEATH((void)v.f32(), "is_host");
  EXPECT_DEATH((void)v.narrow(0, 1, 2).f32(), "is_host");
  const Tensor host = Tensor::empty({4});
  EXPECT_DEATH(convert_into(v, host), "on_host");
}

}  // namespace
}  // namespace kakusan
