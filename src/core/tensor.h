// Tensor (owns its storage, or shares a read-only mapping) and TensorView (borrows).
//
// Views carry element strides so a slice or a permutation can be described without copying; kernels that
// need dense data check is_contiguous(). Both carry their Device: host code may dereference host memory only
// (the typed accessors assert it), a backend's memory is reached through that backend's ops, upload and
// download. Tensors are always contiguous and move-only: copies are explicit
// (clone()), so ownership is visible in the code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"

namespace kakusan {

// Contiguous (row-major) strides for a shape.
Shape contiguous_strides(const Shape& shape);
// Bytes of a dense tensor; throws for negative dimensions or a size that does not fit.
size_t tensor_bytes(const Shape& shape, DType dtype);

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device;  // fits beside dtype: the view stays as small as it was
  Shape shape;
  Shape strides;  // in elements

  TensorView() = default;
  TensorView(void* data, DType dtype, Shape shape)
      : data(data), dtype(dtype), shape(shape), strides(contiguous_strides(shape)) {}
  TensorView(void* data, DType dtype, Shape shape, Shape strides)
      : data(data), dtype(dtype), shape(shape), strides(strides) {}
  TensorView(void* data, DType dtype, Device device, Shape shape)
      : data(data), dtype(dtype), device(device), shape(shape), strides(contiguous_strides(shape)) {}
  TensorView(float* data, Shape shape) : TensorView(data, DType::F32, shape) {}

  bool empty() const { return data == nullptr; }
  int rank() const { return shape.rank(); }
  int64_t dim(int i) const { return shape.dim(i); }
  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  bool is_contiguous() const;

  bool on_host() const { return device.is_host(); }

  // Typed access for host code; checks the dtype and that the memory is host memory (programmer errors).
  float* f32() const {
    KK_ASSERT(dtype == DType::F32 && device.is_host());
    return static_cast<float*>(data);
  }
  int64_t* i64() const {
    KK_ASSERT(dtype == DType::I64 && device.is_host());
    return static_cast<int64_t*>(data);
  }
  uint16_t* u16() const {
    KK_ASSERT((dtype == DType::F16 || dtype == DType::BF16) && device.is_host());
    return static_cast<uint16_t*>(data);
  }

  // Same data, new shape (contiguous views only; numel must match).
  TensorView reshape(Shape new_shape) const;
  // Rows [begin, end) of dimension 0.
  TensorView slice0(int64_t begin, int64_t end) const;
  // Element i of dimension 0, with that dimension dropped.
  TensorView operator[](int64_t i) const;
  // Elements [start, start + length) of dimension `dim` (a strided view; no copy).
  TensorView narrow(int dim, int64_t start, int64_t length) const;
  // Axes reordered: result dim i is this view's dim axes[i] (a strided view; no copy).
  TensorView permute(std::initializer_list<int> axes) const;
  // The same memory seen with any shape and strides (a broadcast with zero strides, a smaller buffer in a
  // bigger dead one); the caller keeps it inside the memory it views.
  TensorView as_strided(Shape new_shape, Shape new_strides) const;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  // Uninitialised, 64-byte aligned host storage (DeviceAllocator::empty allocates on other devices).
  static Tensor empty(Shape shape, DType dtype = DType::F32);
  static Tensor zeros(Shape shape, DType dtype = DType::F32);
  // A tensor over `bytes` at `data` on `device`, freed by `owner` (a backend's allocation).
  static Tensor adopt(void* data, DType dtype, Device device, Shape shape, std::shared_ptr<const void> owner);
  static Tensor full(Shape shape, float value);
  // A tensor over memory owned by someone else (e.g. a mapped file); `owner` keeps it alive.
  static Tensor borrow(TensorView view, std::shared_ptr<const void> owner);
  // A contiguous copy of any view.
  static Tensor copy_of(const TensorView& view);

  Tensor clone() const { return copy_of(view()); }
  // A float32 copy of a floating-point tensor (f16/bf16 converted).
  Tensor to_f32() const;
  Tensor to(DType dtype) const;

  bool defined() const { return data_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_.dim(i); }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  void* data() const { return data_; }
  float* f32() const { return view().f32(); }
  int64_t* i64() const { return view().i64(); }

  TensorView view() const { return TensorView(data_, dtype_, device_, shape_); }
  operator TensorView() const { return view(); }  // NOLINT: a tensor is usable wherever a view is

  // Reinterpret with a new shape of the same numel (no copy).
  Tensor& reshape_(Shape new_shape);

 private:
  std::shared_ptr<const void> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::F32;
  Device device_;
  Shape shape_;
};

// Copy with conversion between float dtypes (any strides in `src`, contiguous `dst`), host memory only.
void convert_into(const TensorView& src, const TensorView& dst);

}  // namespace kakusan
