#include "support/separate_heap_backend.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "backend/registry.h"
#include "core/large_alloc.h"

namespace kakusan::testing {
namespace {

constexpr uint32_t kScrambleKey = 0x9E3779B9u;

// The key byte for a heap address: every aligned 32-bit word is XOR'ed with kScrambleKey, whatever the
// dtype or offset of the view that covers it.
uint8_t key_at(uintptr_t address) { return uint8_t(kScrambleKey >> (8 * (address & 3))); }

// Copies n bytes between the heap and the host, (un)scrambling by the heap address (XOR is its own inverse).
void transfer(const std::byte* from, std::byte* to, size_t n, uintptr_t heap_address) {
  for (size_t i = 0; i < n; ++i) to[i] = from[i] ^ std::byte(key_at(heap_address + i));
}

// The bytes a view touches: from its first element to its last (strides are never negative here).
struct Extent {
  std::byte* begin;
  size_t bytes;
};

Extent extent_of(const TensorView& v) {
  auto* begin = static_cast<std::byte*>(v.data);
  if (v.numel() == 0) return {begin, 0};
  int64_t last = 0;
  for (int d = 0; d < v.rank(); ++d) {
    KK_CHECK(v.strides[d] >= 0, "negative strides are not supported");
    last += (v.shape[d] - 1) * v.strides[d];
  }
  return {begin, size_t(last + 1) * dtype_size(v.dtype)};
}

}  // namespace

// The operands of one op: host mirrors of their extents (unscrambled), and the outputs to scramble back.
class SeparateHeapBackend::Operands {
 public:
  Operands(const SeparateHeapBackend& heap, const char* op) : heap_(heap), op_(op) {}
  ~Operands() {
    for (std::byte* p : buffers_) ::operator delete(p, std::align_val_t(64));
  }
  Operands(const Operands&) = delete;
  Operands& operator=(const Operands&) = delete;

  TensorView in(const char* what, const TensorView& v) { return mirror(what, v, false); }
  TensorView optional(const char* what, const TensorView& v) { return v.empty() ? v : in(what, v); }
  TensorView out(const char* what, const TensorView& v) { return mirror(what, v, true); }

  // Scrambles every output's mirror back into the heap.
  void finish() {
    for (const Output& o : outputs_)
      transfer(o.host, o.extent.begin, o.extent.bytes, reinterpret_cast<uintptr_t>(o.extent.begin));
  }

 private:
  struct Output {
    std::byte* host;
    Extent extent;
  };

  TensorView mirror(const char* what, const TensorView& v, bool output) {
    KK_CHECK(!v.empty(), heap_.name(), " ", op_, ": ", what, " is empty");
    KK_CHECK(v.device == heap_.device(), heap_.name(), " ", op_, ": ", what, " is ", v.device.str(),
             " memory, not this backend's (", heap_.device().str(), ")");
    const Extent e = extent_of(v);
    KK_CHECK(heap_.owns(e.begin, e.bytes), heap_.name(), " ", op_, ": ", what,
             " is tagged as this backend's memory but lies outside its heap");
    auto* host = static_cast<std::byte*>(::operator new(std::max<size_t>(e.bytes, 64), std::align_val_t(64)));
    buffers_.push_back(host);
    transfer(e.begin, host, e.bytes, reinterpret_cast<uintptr_t>(e.begin));
    if (output) outputs_.push_back({host, e});
    TensorView h = v;
    h.data = host;
    h.device = Device::host();
    return h;
  }

  const SeparateHeapBackend& heap_;
  const char* op_;
  std::vector<std::byte*> buffers_;
  std::vector<Output> outputs_;
};

SeparateHeapBackend::~SeparateHeapBackend() {
  // Tensors of this backend must not outlive it; a leak here is a test bug, reported loudly.
  KK_ASSERT(blocks_.empty());
}

void* SeparateHeapBackend::allocate(size_t bytes) {
  refuse_while_capturing("allocate", bytes);
  void* p = allocate_large(bytes);
  if (p == nullptr) return nullptr;
  const std::lock_guard lock(mutex_);
  blocks_[reinterpret_cast<uintptr_t>(p)] = bytes;
  live_ += bytes;
  peak_ = std::max(peak_, live_);
  return p;
}

void SeparateHeapBackend::deallocate(void* p, size_t bytes) {
  if (p == nullptr) return;
  {
    const std::lock_guard lock(mutex_);
    // Memory freed while capturing may be reused before the graph replays: the capture is unusable (CUDA
    // would record a free node, run again at every replay).
    if (capturing_ == std::this_thread::get_id() && broken_.empty())
      broken_ = str_cat("a block of ", bytes, " bytes was freed while capturing");
    const auto it = blocks_.find(reinterpret_cast<uintptr_t>(p));
    KK_ASSERT(it != blocks_.end() && it->second == bytes);
    blocks_.erase(it);
    live_ -= bytes;
  }
  free_large(p, bytes);
}

size_t SeparateHeapBackend::live_bytes() const {
  const std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& [base, bytes] : blocks_) n += bytes;
  return n;
}

size_t SeparateHeapBackend::peak_bytes() const {
  const std::lock_guard lock(mutex_);
  return peak_;
}

void SeparateHeapBackend::reset_peak() {
  const std::lock_guard lock(mutex_);
  peak_ = live_;
}

void SeparateHeapBackend::tally_linear_scratch(const TensorView& x, const TensorView&, const TensorView&,
                                               ScratchTally& tally) const {
  if (reports_linear_scratch_) tally.need(0, x.numel() * int64_t(dtype_size(DType::F16)));
}

bool SeparateHeapBackend::owns(const void* p, size_t bytes) const {
  const auto address = reinterpret_cast<uintptr_t>(p);
  const std::lock_guard lock(mutex_);
  auto it = blocks_.upper_bound(address);
  if (it == blocks_.begin()) return false;
  --it;
  return address >= it->first && address + bytes <= it->first + it->second;
}

void SeparateHeapBackend::upload(const TensorView& host, const TensorView& dst) {
  check_upload(*this, host, dst);
  refuse_while_capturing("upload", dst.nbytes());
  KK_CHECK(owns(dst.data, dst.nbytes()), name(), " upload: the destination lies outside this backend's heap");
  Tensor converted = Tensor::empty(dst.shape, dst.dtype);
  convert_into(host, converted);
  transfer(static_cast<const std::byte*>(converted.data()), static_cast<std::byte*>(dst.data), dst.nbytes(),
           reinterpret_cast<uintptr_t>(dst.data));
}

void SeparateHeapBackend::download(const TensorView& src, const TensorView& host) {
  check_download(*this, src, host);
  refuse_while_capturing("download", host.nbytes());
  Operands o(*this, "download");
  convert_into(o.in("source", src), host);
}

// The recorded ops, run again by replay().
class SeparateHeapBackend::Recording final : public OpGraph {
 public:
  Recording(SeparateHeapBackend& backend, std::vector<std::function<void()>> ops, uint64_t scratch_generation)
      : backend_(backend), ops_(std::move(ops)), scratch_generation_(scratch_generation) {}

  bool replay() override {
    KK_CHECK(!backend_.capturing_here(), backend_.name(), ": cannot replay a graph while capturing another");
    {
      const std::lock_guard lock(backend_.mutex_);
      if (scratch_generation_ != backend_.scratch_generation_) return false;
    }
    for (const auto& op : ops_) op();
    const std::lock_guard lock(backend_.mutex_);
    backend_.replayed_ops_ += int64_t(ops_.size());
    return true;
  }

 private:
  SeparateHeapBackend& backend_;
  std::vector<std::function<void()>> ops_;
  uint64_t scratch_generation_;
};

bool SeparateHeapBackend::capturing_here() const {
  const std::lock_guard lock(mutex_);
  return capturing_ == std::this_thread::get_id();
}

void SeparateHeapBackend::refuse_while_capturing(const char* what, size_t bytes) const {
  if (!capturing_here()) return;
  fail(name(), ": cannot ", what, bytes ? str_cat(" (", bytes, " bytes)") : std::string(),
       " while capturing a graph: a captured step may only run ops on memory that already exists");
}

void SeparateHeapBackend::run(std::function<void()> op) {
  {
    const std::lock_guard lock(mutex_);
    if (capturing_ == std::this_thread::get_id()) {
      recorded_.push_back(std::move(op));
      return;
    }
  }
  op();
}

bool SeparateHeapBackend::begin_capture() {
  const std::lock_guard lock(mutex_);
  KK_CHECK(capturing_ == std::thread::id(), name(), ": begin_capture while a capture is in progress");
  capturing_ = std::this_thread::get_id();
  recorded_.clear();
  broken_.clear();
  return true;
}

std::unique_ptr<OpGraph> SeparateHeapBackend::end_capture() {
  std::vector<std::function<void()>> ops;
  std::string broken;
  uint64_t generation = 0;
  {
    const std::lock_guard lock(mutex_);
    KK_CHECK(capturing_ == std::this_thread::get_id(), name(), ": end_capture without begin_capture on this thread");
    capturing_ = {};
    ops = std::exchange(recorded_, {});
    broken = std::exchange(broken_, {});
    generation = scratch_generation_;
  }
  KK_CHECK(broken.empty(), name(), ": the capture cannot be replayed: ", broken);
  return std::make_unique<Recording>(*this, std::move(ops), generation);
}

void SeparateHeapBackend::release_scratch() {
  {
    const std::lock_guard lock(mutex_);
    if (capturing_ == std::this_thread::get_id()) return;  // the capture uses it (as on a GPU)
    ++scratch_generation_;
  }
  inner_.release_scratch();
}

void SeparateHeapBackend::abort_capture() noexcept {
  const std::lock_guard lock(mutex_);
  if (capturing_ != std::this_thread::get_id()) return;
  capturing_ = {};
  recorded_.clear();
  broken_.clear();
}

int64_t SeparateHeapBackend::replayed_ops() const {
  const std::lock_guard lock(mutex_);
  return replayed_ops_;
}

void SeparateHeapBackend::linear(const TensorView& x, const TensorView& w, const TensorView& bias,
                                 const TensorView& y) {
  run([=, this] {
    Operands o(*this, "linear");
    inner_.linear(o.in("x", x), o.in("weight", w), o.optional("bias", bias), o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::conv2d(const TensorView& x, const TensorView& w, const TensorView& bias,
                                 const Conv2dParams& p, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "conv2d");
    inner_.conv2d(o.in("x", x), o.in("weight", w), o.optional("bias", bias), p, o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::group_norm(const TensorView& x, int groups, const TensorView& gamma,
                                     const TensorView& beta, float eps, Activation act, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "group_norm");
    inner_.group_norm(o.in("x", x), groups, o.optional("gamma", gamma), o.optional("beta", beta), eps, act,
                      o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta,
                                     float eps, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "layer_norm");
    inner_.layer_norm(o.in("x", x), o.optional("gamma", gamma), o.optional("beta", beta), eps, o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                    const AttentionParams& p, const TensorView& out) {
  run([=, this] {
    Operands o(*this, "attention");
    inner_.attention(o.in("q", q), o.in("k", k), o.in("v", v), p, o.out("out", out));
    o.finish();
  });
}

void SeparateHeapBackend::activation(const TensorView& x, Activation act, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "activation");
    inner_.activation(o.in("x", x), act, o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::add(const TensorView& a, const TensorView& b, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "add");
    inner_.add(o.in("a", a), o.in("b", b), o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::geglu(const TensorView& x, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "geglu");
    inner_.geglu(o.in("x", x), o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::resize_nearest(const TensorView& x, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "resize_nearest");
    inner_.resize_nearest(o.in("x", x), o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::scale(const TensorView& x, float alpha, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "scale");
    inner_.scale(o.in("x", x), alpha, o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::divide(const TensorView& x, float divisor, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "divide");
    inner_.divide(o.in("x", x), divisor, o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) {
  run([=, this] {
    Operands o(*this, "cfg_combine");
    inner_.cfg_combine(o.in("noise_pred", noise_pred), guidance, o.out("out", out));
    o.finish();
  });
}

void SeparateHeapBackend::timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift,
                                             const TensorView& y) {
  run([=, this] {
    Operands o(*this, "timestep_embedding");
    inner_.timestep_embedding(o.in("timesteps", timesteps), flip_sin_to_cos, freq_shift, o.out("y", y));
    o.finish();
  });
}

// As on a GPU, where embedding reads back whether every id was in range: it cannot be captured.
void SeparateHeapBackend::embedding(const TensorView& table, const TensorView& ids, const TensorView& y) {
  refuse_while_capturing("embedding (it waits for the device to check the ids)");
  run([=, this] {
    Operands o(*this, "embedding");
    inner_.embedding(o.in("table", table), o.in("ids", ids), o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "gaussian_sample");
    inner_.gaussian_sample(o.in("moments", moments), o.in("noise", noise), o.out("y", y));
    o.finish();
  });
}

void SeparateHeapBackend::blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) {
  run([=, this] {
    Operands o(*this, "blend_tiles");
    inner_.blend_tiles(o.in("a", a), o.out("b", b), extent, vertical);
    o.finish();
  });
}

void SeparateHeapBackend::copy(const TensorView& x, const TensorView& y) {
  run([=, this] {
    Operands o(*this, "copy");
    inner_.copy(o.in("x", x), o.out("y", y));
    o.finish();
  });
}

SeparateHeapBackend& registered_separate_heap(const std::string& kind) {
  static std::mutex mutex;
  static std::map<std::string, SeparateHeapBackend*> made;
  std::lock_guard lock(mutex);
  SeparateHeapBackend*& backend = made[kind];
  if (backend == nullptr) {
    backend = new SeparateHeapBackend(cpu_backend());
    register_backend(kind, [backend](int) -> Backend& { return *backend; });
  }
  return *backend;
}

}  // namespace kakusan::testing
