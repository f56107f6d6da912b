#include "backend/cpu/scratch.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/half.h"
#include "core/large_alloc.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {

namespace {

// Every live buffer (threads register theirs on first use), so that accounting and release_all_scratch()
// see all threads' memory.
struct Registry {
  std::mutex mutex;
  std::vector<ScratchBuffer*> buffers;
  size_t bytes = 0;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: thread_local buffers may outlive static objects
  return *r;
}

size_t byte_size(size_t floats) { return (floats * sizeof(float) + 63) / 64 * 64; }

}  // namespace

ScratchLimits& scratch_limits() {
  static ScratchLimits limits;
  return limits;
}

ScratchBuffer::ScratchBuffer() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.buffers.push_back(this);
}

ScratchBuffer::~ScratchBuffer() {
  release();
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::erase(r.buffers, this);
}

void ScratchBuffer::release() {
  std::lock_guard lock(registry().mutex);
  release_locked();
}

void ScratchBuffer::release_locked() {
  if (data_ == nullptr) return;
  free_large(data_, byte_size(capacity_));
  data_ = nullptr;
  registry().bytes -= byte_size(capacity_);
  capacity_ = 0;
}

float* ScratchBuffer::floats(size_t n) {
  if (n > capacity_) {
    release();
    const size_t bytes = byte_size(n);
    data_ = static_cast<float*>(allocate_large(bytes));
    if (data_ == nullptr) fail("out of memory allocating ", bytes, " bytes of kernel scratch");
    capacity_ = n;
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    r.bytes += bytes;
  }
  return data_;
}

size_t scratch_bytes() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  return r.bytes;
}

void release_all_scratch() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (ScratchBuffer* b : r.buffers) b->release_locked();
}

ScratchBuffer& scratch(Slot slot) {
  thread_local std::array<ScratchBuffer, size_t(Slot::Count)> buffers;
  return buffers[size_t(slot)];
}

TensorView dense_f32(const TensorView& v, Slot slot) {
  if (v.dtype == DType::F32 && v.is_contiguous()) return TensorView(v.data, DType::F32, v.shape);
  TensorView dense(scratch(slot).floats(size_t(v.numel())), DType::F32, v.shape);
  copy_strided(v, dense);
  return dense;
}

const float* param_f32(const TensorView& v, Slot slot) {
  if (v.empty()) return nullptr;
  return dense_f32(v, slot).f32();
}

DenseOutput::DenseOutput(const TensorView& target, Slot slot) : target_(target) {
  if (target.dtype == DType::F32 && target.is_contiguous())
    dense_ = TensorView(target.data, DType::F32, target.shape);
  else
    dense_ = TensorView(scratch(slot).floats(size_t(target.numel())), DType::F32, target.shape);
}

void DenseOutput::finish() const {
  if (dense_.data != target_.data) copy_strided(dense_, target_);
}

namespace {

float load(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::I64: return float(static_cast<const int64_t*>(base)[i]);
  }
  return 0;
}

void store(void* base, DType t, int64_t i, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(base)[i] = v; return;
    case DType::F16: static_cast<uint16_t*>(base)[i] = f32_to_f16(v); return;
    case DType::BF16: static_cast<uint16_t*>(base)[i] = f32_to_bf16(v); return;
    case DType::I64: static_cast<int64_t*>(base)[i] = int64_t(v); return;
  }
}

// One innermost run of `n` elements.
void copy_run(const void* src, DType st, int64_t ss, void* dst, DType dt, int64_t ds, int64_t n) {
  if (st == dt && ss == 1 && ds == 1) {
    std::memcpy(dst, src, size_t(n) * dtype_size(st));
  } else if (st == DType::F16 && dt == DType::F32 && ss == 1 && ds == 1) {
    convert_f16_to_f32(static_cast<const uint16_t*>(src), static_cast<float*>(dst), size_t(n));
  } else if (st == DType::BF16 && dt == DType::F32 && ss == 1 && ds == 1) {
    convert_bf16_to_f32(static_cast<const uint16_t*>(src), static_cast<float*>(dst), size_t(n));
  } else if (st == DType::F32 && dt == DType::F32) {
    const float* s = static_cast<const float*>(src);
    float* d = static_cast<float*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i * ds] = s[i * ss];
  } else {
    for (int64_t i = 0; i < n; ++i) store(dst, dt, i * ds, load(src, st, i * ss));
  }
}

// Float32 copy where the last two dimensions are transposed between x and y (one side has stride 1 along
// dim -2, the other along dim -1), e.g. NCHW <-> tokens permutes. Done in square tiles so both sides touch
// few cache lines.
bool copy_transposed(const TensorView& x, const TensorView& y) {
  const int rank = x.rank();
  if (rank < 2 || x.dtype != DType::F32 || y.dtype != DType::F32) return false;
  const int64_t rows = x.shape[rank - 2], cols = x.shape[rank - 1];
  const int64_t xr = x.strides[rank - 2], xc = x.strides[rank - 1], yr = y.strides[rank - 2], yc = y.strides[rank - 1];
  if (rows < 2 || cols < 2 || !((xr == 1 && yc == 1) || (xc == 1 && yr == 1))) return false;
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t outer = x.numel() / (rows * cols);
  const float* src = x.f32();
  float* dst = y.f32();
  parallel_for(outer * row_tiles, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      int64_t o = unit / row_tiles, xo = 0, yo = 0;
      for (int d = rank - 3; d >= 0; --d) {
        const int64_t i = o % x.shape[d];
        o /= x.shape[d];
        xo += i * x.strides[d];
        yo += i * y.strides[d];
      }
      const int64_t r0 = unit % row_tiles * kTile, r1 = std::min(rows, r0 + kTile);
      for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
        const int64_t c1 = std::min(cols, c0 + kTile);
        // The inner loop runs along the destination's unit stride (strided writes at power-of-two strides
        // would all land in one cache set).
        if (yc == 1) {
          for (int64_t r = r0; r < r1; ++r)
            for (int64_t c = c0; c < c1; ++c) dst[yo + r * yr + c] = src[xo + r * xr + c * xc];
        } else {
          for (int64_t c = c0; c < c1; ++c)
            for (int64_t r = r0; r < r1; ++r) dst[yo + r + c * yc] = src[xo + r * xr + c * xc];
        }
      }
    }
  }, std::max<int64_t>(1, 4096 / (kTile * cols)));
  return true;
}

}  // namespace

void widen_to_f32(const void* src, DType dtype, float* dst, int64_t n) {
  copy_run(src, dtype, 1, dst, DType::F32, 1, n);
}

void copy_strided(const TensorView& x, const TensorView& y) {
  KK_ASSERT(x.shape == y.shape);
  const int64_t total = x.numel();
  if (total == 0) return;
  const size_t xs = dtype_size(x.dtype), ys = dtype_size(y.dtype);
  if (x.is_contiguous() && y.is_contiguous()) {
    parallel_for(total, [&](int64_t b, int64_t e) {
      copy_run(static_cast<const char*>(x.data) + b * int64_t(xs), x.dtype, 1,
               static_cast<char*>(y.data) + b * int64_t(ys), y.dtype, 1, e - b);
    }, 1 << 16);
    return;
  }
  if (copy_transposed(x, y)) return;
  const int rank = x.rank();
  const int64_t inner = x.shape[rank - 1];
  const int64_t rows = total / inner;
  parallel_for(rows, [&](int64_t begin, int64_t end) {
    // Unravel the first row's index, then step it like an odometer.
    Shape index = x.shape;
    int64_t r = begin;
    for (int d = rank - 2; d >= 0; --d) {
      index[d] = r % x.shape[d];
      r /= x.shape[d];
    }
    for (int64_t row = begin; row < end; ++row) {
      int64_t xo = 0, yo = 0;
      for (int d = 0; d < rank - 1; ++d) {
        xo += index[d] * x.strides[d];
        yo += index[d] * y.strides[d];
      }
      copy_run(static_cast<const char*>(x.data) + xo * int64_t(xs), x.dtype, x.strides[rank - 1],
               static_cast<char*>(y.data) + yo * int64_t(ys), y.dtype, y.strides[rank - 1], inner);
      for (int d = rank - 2; d >= 0; --d) {
        if (++index[d] < x.shape[d]) break;
        index[d] = 0;
      }
    }
  }, std::max<int64_t>(1, 4096 / inner));
}

}  // namespace kakusan::cpu
