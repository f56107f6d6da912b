#include "backend/cpu/vec_math.h"

#include <limits>

namespace kakusan::cpu {
namespace {
constexpr int kLanes = 16;
constexpr int64_t kBlock = 1024;  // float lanes sum at most this many elements before joining the double total
}  // namespace

void apply_activation(Activation act, const float* x, float* y, int64_t n) {
  switch (act) {
    case Activation::None:
      if (x != y) std::copy(x, x + n, y);
      return;
    case Activation::SiLU:
      for (int64_t i = 0; i < n; ++i) y[i] = silu(x[i]);
      return;
    case Activation::GELU:
      for (int64_t i = 0; i < n; ++i) y[i] = gelu(x[i]);
      return;
    case Activation::GELUTanh:
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_tanh(x[i]);
      return;
    case Activation::QuickGELU:
      for (int64_t i = 0; i < n; ++i) y[i] = quick_gelu(x[i]);
      return;
  }
}

float row_max(const float* x, int64_t n) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] = std::max(lanes[j], x[i + j]);
  float m = lanes[0];
  for (int j = 1; j < kLanes; ++j) m = std::max(m, lanes[j]);
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

double row_sum(const float* x, int64_t n) {
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lanes[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lanes[j] += x[i + j];
    for (int j = 0; j < kLanes; ++j) total += lanes[j];
    for (; i < end; ++i) total += x[i];
  }
  return total;
}

double row_sum_sq_dev(const float* x, int64_t n, float mean) {
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lanes[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float d = x[i + j] - mean;
        lanes[j] += d * d;
      }
    for (int j = 0; j < kLanes; ++j) total += lanes[j];
    for (; i < end; ++i) total += double(x[i] - mean) * (x[i] - mean);
  }
  return total;
}

float exp_shifted_sum(float* row, int64_t n, float shift) {
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lanes[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float e = fast_exp(row[i + j] - shift);
        row[i + j] = e;
        lanes[j] += e;
      }
    for (int j = 0; j < kLanes; ++j) total += lanes[j];
    for (; i < end; ++i) total += row[i] = fast_exp(row[i] - shift);
  }
  return float(total);
}

void softmax_row(float* row, int64_t n) {
  if (n == 0) return;
  const float inv = 1.0f / exp_shifted_sum(row, n, row_max(row, n));
  for (int64_t i = 0; i < n; ++i) row[i] *= inv;
}

}  // namespace kakusan::cpu
