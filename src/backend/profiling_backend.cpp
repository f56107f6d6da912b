#include "backend/profiling_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/cpu_time.h"

namespace kakusan {
namespace {

std::string shapes(std::initializer_list<const TensorView*> views) {
  std::string s;
  for (const TensorView* v : views) {
    if (!s.empty()) s += " ";
    s += v->empty() ? std::string("-") : v->shape.str();
  }
  return s;
}

}  // namespace

template <typename Fn>
void ProfilingBackend::timed(const std::string& key, double flops, Fn&& fn) {
  const bool device = !inner_.device().is_host();
  if (device) inner_.synchronize();
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  fn();
  if (device) inner_.synchronize();
  Entry& e = entries_[key];
  ++e.calls;
  e.cpu_s += process_cpu_seconds() - cpu0;
  e.wall_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  e.flops += flops;
}

std::vector<ProfilingBackend::Row> ProfilingBackend::rows() const {
  std::vector<Row> rows;
  for (const auto& [key, e] : entries_) {
    rows.push_back(e);
    rows.back().op = key;
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.wall_s > b.wall_s; });
  return rows;
}

std::string ProfilingBackend::report() const {
  const std::vector<Row> rows = this->rows();
  double total = 0;
  for (const Row& r : rows) total += r.wall_s;
  std::string out = "| op shapes | calls | wall ms | cpu ms | share | GFLOP/s (wall) |\n|---|---|---|---|---|---|\n";
  char line[512];
  for (const Row& e : rows) {
    std::snprintf(line, sizeof line, "| %s | %lld | %.2f | %.2f | %.1f%% | %s |\n", e.op.c_str(), (long long)e.calls,
                  e.wall_s * 1e3, e.cpu_s * 1e3, total > 0 ? 100.0 * e.wall_s / total : 0.0,
                  e.flops > 0 ? std::to_string(int(e.flops / e.wall_s / 1e9)).c_str() : "-");
    out += line;
  }
  std::snprintf(line, sizeof line, "| total | | %.2f | | | |\n", total * 1e3);
  return out + line;
}

void ProfilingBackend::linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) {
  const double flops = 2.0 * double(y.numel()) * double(w.rank() == 2 ? w.dim(1) : 0);
  timed("linear " + shapes({&x, &w}), flops, [&] { inner_.linear(x, w, bias, y); });
}

void ProfilingBackend::conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                              const TensorView& y) {
  const double flops = w.rank() == 4 ? 2.0 * double(y.numel()) * double(w.dim(1) * w.dim(2) * w.dim(3)) : 0;
  timed("conv2d " + shapes({&x, &w}) + " s" + std::to_string(p.stride), flops,
        [&] { inner_.conv2d(x, w, bias, p, y); });
}

void ProfilingBackend::group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta,
                                  float eps, Activation act, const TensorView& y) {
  timed("group_norm " + shapes({&x}), 0, [&] { inner_.group_norm(x, groups, gamma, beta, eps, act, y); });
}

void ProfilingBackend::layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                                  const TensorView& y) {
  timed("layer_norm " + shapes({&x}), 0, [&] { inner_.layer_norm(x, gamma, beta, eps, y); });
}

void ProfilingBackend::attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                 const AttentionParams& p, const TensorView& out) {
  const double flops = q.rank() == 3 && v.rank() == 3
                           ? 2.0 * double(q.dim(0)) * double(q.dim(1)) * double(k.dim(1)) * double(q.dim(2) + v.dim(2))
                           : 0;
  timed("attention " + shapes({&q, &k}) + " h" + std::to_string(p.heads), flops,
        [&] { inner_.attention(q, k, v, p, out); });
}

void ProfilingBackend::activation(const TensorView& x, Activation act, const TensorView& y) {
  timed("activation " + shapes({&x}), 0, [&] { inner_.activation(x, act, y); });
}

void ProfilingBackend::add(const TensorView& a, const TensorView& b, const TensorView& y) {
  timed("add " + shapes({&a}), 0, [&] { inner_.add(a, b, y); });
}

void ProfilingBackend::geglu(const TensorView& x, const TensorView& y) {
  timed("geglu " + shapes({&x}), 0, [&] { inner_.geglu(x, y); });
}

void ProfilingBackend::resize_nearest(const TensorView& x, const TensorView& y) {
  timed("resize_nearest " + shapes({&x, &y}), 0, [&] { inner_.resize_nearest(x, y); });
}

void ProfilingBackend::scale(const TensorView& x, float alpha, const TensorView& y) {
  timed("scale " + shapes({&x}), 0, [&] { inner_.scale(x, alpha, y); });
}

void ProfilingBackend::divide(const TensorView& x, float divisor, const TensorView& y) {
  timed("divide " + shapes({&x}), 0, [&] { inner_.divide(x, divisor, y); });
}

void ProfilingBackend::cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) {
  timed("cfg_combine " + shapes({&noise_pred}), 0, [&] { inner_.cfg_combine(noise_pred, guidance, out); });
}

void ProfilingBackend::timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift,
                                          const TensorView& y) {
  timed("timestep_embedding " + shapes({&y}), 0,
        [&] { inner_.timestep_embedding(timesteps, flip_sin_to_cos, freq_shift, y); });
}

void ProfilingBackend::embedding(const TensorView& table, const TensorView& ids, const TensorView& y) {
  timed("embedding " + shapes({&table, &ids}), 0, [&] { inner_.embedding(table, ids, y); });
}

void ProfilingBackend::gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) {
  timed("gaussian_sample " + shapes({&moments}), 0, [&] { inner_.gaussian_sample(moments, noise, y); });
}

void ProfilingBackend::blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) {
  timed("blend_tiles " + shapes({&a, &b}), 0, [&] { inner_.blend_tiles(a, b, extent, vertical); });
}

void ProfilingBackend::copy(const TensorView& x, const TensorView& y) {
  timed(std::string("copy ") + shapes({&x}) + (x.is_contiguous() ? "" : " strided-in") +
            (y.is_contiguous() ? "" : " strided-out"),
        0, [&] { inner_.copy(x, y); });
}

}  // namespace kakusan
