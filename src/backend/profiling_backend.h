// A Backend that forwards every call to another one and records, per op and shape, the number of calls, the
// wall and process-CPU time and the FLOPs of the heavy ops: to see where a model's forward pass spends its
// time (bench_op_profile and `kakusan bench --profile` print report()). Around a device backend, whose ops
// return once enqueued, each op is timed from an idle device to its end (synchronize() before and after): the
// device time of each op, plus a synchronisation's latency. Not thread-safe: one caller thread at a time, as
// models run.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace kakusan {

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  const char* name() const override { return "profiling"; }

  // A markdown table, most expensive (op, shape) first, with each row's share of the total.
  std::string report() const;
  struct Row {
    std::string op;  // op name and shapes
    int64_t calls = 0;
    double wall_s = 0, cpu_s = 0, flops = 0;
  };
  // The same rows, most expensive first.
  std::vector<Row> rows() const;
  void reset() { entries_.clear(); }
  // The FLOPs counted since the last reset() (the heavy ops: linear, conv2d, attention).
  double total_flops() const {
    double flops = 0;
    for (const auto& [key, entry] : entries_) flops += entry.flops;
    return flops;
  }

  // Memory is the inner backend's.
  Device device() const override { return inner_.device(); }
  void* allocate(size_t bytes) override { return inner_.allocate(bytes); }
  void deallocate(void* p, size_t bytes) override { inner_.deallocate(p, bytes); }
  void upload(const TensorView& host, const TensorView& dst) override { inner_.upload(host, dst); }
  void download(const TensorView& src, const TensorView& host) override { inner_.download(src, host); }

  void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) override;
  void conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
              const TensorView& y) override;
  void group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta, float eps,
                  Activation act, const TensorView& y) override;
  void layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                  const TensorView& y) override;
  void attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                 const TensorView& out) override;
  void activation(const TensorView& x, Activation act, const TensorView& y) override;
  void add(const TensorView& a, const TensorView& b, const TensorView& y) override;
  void geglu(const TensorView& x, const TensorView& y) override;
  void resize_nearest(const TensorView& x, const TensorView& y) override;
  void scale(const TensorView& x, float alpha, const TensorView& y) override;
  void divide(const TensorView& x, float divisor, const TensorView& y) override;
  void cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) override;
  void timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift,
                          const TensorView& y) override;
  void embedding(const TensorView& table, const TensorView& ids, const TensorView& y) override;
  void gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) override;
  void blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) override;
  void copy(const TensorView& x, const TensorView& y) override;
  void synchronize() override { inner_.synchronize(); }
  size_t scratch_bytes() const override { return inner_.scratch_bytes(); }
  void release_scratch() override { inner_.release_scratch(); }

 private:
  using Entry = Row;
  template <typename Fn>
  void timed(const std::string& key, double flops, Fn&& fn);

  Backend& inner_;
  std::map<std::string, Entry> entries_;
};

}  // namespace kakusan
