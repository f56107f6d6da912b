// bench_ops: the heavy backend ops at real SD1.5 shapes, for 1 and 2 threads (or --threads N).
//
// It first measures this machine's fp32 peak with a tight FMA loop (so "% of peak" is honest), then prints
// one row per op: shape, wall and CPU milliseconds (medians of repeats), GFLOP/s and % of the measured peak,
// by wall time and by CPU time (the latter stays meaningful when other processes load the machine).
// FLOPs are always those of the direct algorithm, so Winograd convolutions show "effective" rates that can
// exceed the FMA peak. "bf16w" rows run bf16 weights (activations rounded to bf16: backend.h's precision
// rule), "attention bf16" rows AttentionParams::precision = BF16, at the same shapes as their fp32 rows.
//   bench_ops [--threads N] [--filter substring[|substring...]] [--backend cpu|reference]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "backend/backend.h"
#include "backend/cpu/peak_flops.h"
#include "core/thread_pool.h"

namespace kakusan {
namespace {

double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

Tensor random_tensor(Shape shape, float scale, uint32_t seed) {
  Tensor t = Tensor::empty(shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = normal(rng);
  return t;
}

struct Case {
  std::string op, shape;
  double flops;  // 0 for memory-bound ops
  std::function<void()> run;
};

struct Timing {
  double wall_ms;  // median wall time
  double cpu_ms;   // median CPU time of the whole process (all threads)
};

// Repeated runs (at least 3, about 1 s in all) after one warm-up run. The CPU time says what the op cost
// even when other processes share the cores (then wall time overstates it).
Timing time_op(const std::function<void()>& run) {
  run();
  std::vector<double> wall, cpu;
  const auto start = Clock::now();
  while (wall.size() < 3 || (seconds_since(start) < 1.0 && wall.size() < 50)) {
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    run();
    cpu.push_back((cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3);
    wall.push_back(seconds_since(t0) * 1e3);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

// The cases whose "op shape" contains `filter` (or one of its '|'-separated alternatives); inputs are only made
// for those.
// " f16w" / " bf16w" after an op name whose weights are in that dtype.
std::string weight_suffix(DType wt) {
  return wt == DType::F16 ? " f16w" : wt == DType::BF16 ? " bf16w" : "";
}

std::vector<Case> make_cases(Backend& be, const std::string& filter) {
  std::vector<Case> cases;
  auto wanted = [&](const std::string& op, const std::string& shape) {
    if (filter.empty()) return true;
    const std::string name = op + " " + shape;
    for (size_t begin = 0; begin <= filter.size();) {
      const size_t end = std::min(filter.find('|', begin), filter.size());
      if (end > begin && name.find(filter.substr(begin, end - begin)) != std::string::npos) return true;
      begin = end + 1;
    }
    return false;
  };
  auto linear = [&](int64_t m, int64_t k, int64_t n, DType wt = DType::F32) {
    const std::string op = "linear" + weight_suffix(wt);
    const std::string shape = std::to_string(m) + "x" + std::to_string(k) + "->" + std::to_string(n);
    if (!wanted(op, shape)) return;
    auto x = std::make_shared<Tensor>(random_tensor({m, k}, 1.0f, 1));
    auto w = std::make_shared<Tensor>(random_tensor({n, k}, 0.05f, 2).to(wt));
    auto b = std::make_shared<Tensor>(random_tensor({n}, 0.1f, 3));
    auto y = std::make_shared<Tensor>(Tensor::empty({m, n}));
    cases.push_back({op, shape, 2.0 * m * n * k,
                     [&be, x, w, b, y] { be.linear(*x, *w, *b, *y); }});
  };
  auto conv = [&](int64_t batch, int64_t in, int64_t size, int64_t out, int64_t kernel, Conv2dParams p,
                  DType wt = DType::F32) {
    const std::string op = "conv2d" + weight_suffix(wt);
    char shape[128];
    std::snprintf(shape, sizeof shape, "%lldx%lldx%lld^2 k%lld s%d ->%lld", (long long)batch, (long long)in,
                  (long long)size, (long long)kernel, p.stride, (long long)out);
    if (!wanted(op, shape)) return;
    auto x = std::make_shared<Tensor>(random_tensor({batch, in, size, size}, 1.0f, 4));
    auto w = std::make_shared<Tensor>(random_tensor({out, in, kernel, kernel}, 0.02f, 5).to(wt));
    auto b = std::make_shared<Tensor>(random_tensor({out}, 0.1f, 6));
    const int64_t o = (size + p.pad_top + p.pad_bottom - kernel) / p.stride + 1;
    auto y = std::make_shared<Tensor>(Tensor::empty({batch, out, o, o}));
    cases.push_back({op, shape,
                     2.0 * batch * out * o * o * in * kernel * kernel,
                     [&be, x, w, b, y, p] { be.conv2d(*x, *w, *b, p, *y); }});
  };
  auto attention = [&](int64_t batch, int64_t tq, int64_t tk, int heads, int64_t dim, AttentionStrategy s,
                       const char* name, int slice = 0, DType precision = DType::F32) {
    const std::string op = std::string("attention ") + (precision == DType::BF16 ? "bf16 " : "") + name;
    char shape[128];
    std::snprintf(shape, sizeof shape, "b%lld %lldx%lld h%d d%lld", (long long)batch, (long long)tq, (long long)tk,
                  heads, (long long)dim);
    if (!wanted(op, shape)) return;
    auto q = std::make_shared<Tensor>(random_tensor({batch, tq, heads * dim}, 1.0f, 7));
    auto k = std::make_shared<Tensor>(random_tensor({batch, tk, heads * dim}, 1.0f, 8));
    auto v = std::make_shared<Tensor>(random_tensor({batch, tk, heads * dim}, 1.0f, 9));
    auto o = std::make_shared<Tensor>(Tensor::empty({batch, tq, heads * dim}));
    AttentionParams p;
    p.heads = heads;
    p.scale = 1.0f / std::sqrt(float(dim));
    p.strategy = s;
    p.slice_size = slice;
    p.precision = precision;
    cases.push_back({op, shape, 4.0 * batch * heads * tq * tk * dim,
                     [&be, q, k, v, o, p] { be.attention(*q, *k, *v, p, *o); }});
  };
  auto group_norm = [&](int64_t batch, int64_t c, int64_t size) {
    if (!wanted("group_norm+silu", std::to_string(batch) + "x" + std::to_string(c) + "x" + std::to_string(size))) return;
    auto x = std::make_shared<Tensor>(random_tensor({batch, c, size, size}, 1.0f, 10));
    auto g = std::make_shared<Tensor>(random_tensor({c}, 1.0f, 11));
    auto y = std::make_shared<Tensor>(Tensor::empty({batch, c, size, size}));
    cases.push_back({"group_norm+silu",
                     std::to_string(batch) + "x" + std::to_string(c) + "x" + std::to_string(size) + "^2 g32", 0,
                     [&be, x, g, y] { be.group_norm(*x, 32, *g, *g, 1e-5f, Activation::SiLU, *y); }});
  };
  auto geglu = [&](int64_t m, int64_t n) {
    if (!wanted("geglu", std::to_string(m) + "x" + std::to_string(2 * n))) return;
    auto x = std::make_shared<Tensor>(random_tensor({m, 2 * n}, 1.0f, 12));
    auto y = std::make_shared<Tensor>(Tensor::empty({m, n}));
    cases.push_back({"geglu", std::to_string(m) + "x" + std::to_string(2 * n), 0, [&be, x, y] { be.geglu(*x, *y); }});
  };
  auto layer_norm = [&](int64_t m, int64_t n) {
    if (!wanted("layer_norm", std::to_string(m) + "x" + std::to_string(n))) return;
    auto x = std::make_shared<Tensor>(random_tensor({m, n}, 1.0f, 13));
    auto g = std::make_shared<Tensor>(random_tensor({n}, 1.0f, 14));
    auto y = std::make_shared<Tensor>(Tensor::empty({m, n}));
    cases.push_back({"layer_norm", std::to_string(m) + "x" + std::to_string(n), 0,
                     [&be, x, g, y] { be.layer_norm(*x, *g, *g, 1e-5f, *y); }});
  };

  auto permute = [&](int64_t batch, int64_t c, int64_t size) {
    const std::string shape = std::to_string(batch) + "x" + std::to_string(c) + "x" + std::to_string(size) + "^2";
    if (!wanted("copy NCHW->tokens", shape)) return;
    auto x = std::make_shared<Tensor>(random_tensor({batch, c, size, size}, 1.0f, 15));
    auto y = std::make_shared<Tensor>(Tensor::empty({batch, size * size, c}));
    cases.push_back({"copy NCHW->tokens", shape, 0, [&be, x, y, batch, c, size] {
                       be.copy(x->view().reshape({batch, c, size * size}).permute({0, 2, 1}), *y);
                     }});
    cases.push_back({"copy tokens->NCHW", shape, 0, [&be, x, y, batch, c, size] {
                       be.copy(*y, x->view().reshape({batch, c, size * size}).permute({0, 2, 1}));
                     }});
  };

  // UNet at 512x512 (latents 64x64), classifier-free guidance batch 2.
  linear(4096, 320, 1280);
  linear(8192, 320, 2560);   // GEGLU projection, batch 2
  linear(8192, 1280, 320);   // feed-forward out
  linear(8192, 320, 320);    // q/k/v/out projections
  conv(2, 320, 64, 320, 3, Conv2dParams::symmetric(1));
  conv(2, 640, 32, 640, 3, Conv2dParams::symmetric(1));
  conv(2, 1280, 16, 1280, 3, Conv2dParams::symmetric(1));
  conv(2, 1280, 8, 1280, 3, Conv2dParams::symmetric(1));
  conv(2, 320, 64, 320, 3, Conv2dParams::symmetric(1, 2));  // downsampler
  conv(2, 320, 64, 320, 1, Conv2dParams{});                  // proj_in / proj_out
  conv(2, 640, 32, 1280, 1, Conv2dParams{});                 // resnet shortcut
  // VAE decoder at 512x512 (batch 1).
  conv(1, 512, 64, 512, 3, Conv2dParams::symmetric(1));
  conv(1, 256, 256, 256, 3, Conv2dParams::symmetric(1));
  conv(1, 128, 256, 128, 3, Conv2dParams{2, 0, 1, 0, 1});  // encoder downsampler, asymmetric pad
  // Self-attention at 64x64 and cross-attention to 77 text tokens, 8 heads x 40.
  attention(2, 4096, 4096, 8, 40, AttentionStrategy::Full, "full");
  attention(2, 4096, 4096, 8, 40, AttentionStrategy::Sliced, "sliced(1)", 1);
  attention(2, 4096, 4096, 8, 40, AttentionStrategy::Flash, "flash");
  attention(2, 4096, 4096, 8, 40, AttentionStrategy::Auto, "auto");
  attention(2, 4096, 77, 8, 40, AttentionStrategy::Full, "full");
  attention(2, 4096, 77, 8, 40, AttentionStrategy::Flash, "flash");
  attention(2, 4096, 77, 8, 40, AttentionStrategy::Auto, "auto");
  attention(2, 1024, 1024, 8, 80, AttentionStrategy::Full, "full");
  attention(2, 1024, 1024, 8, 80, AttentionStrategy::Flash, "flash");
  attention(2, 77, 77, 12, 64, AttentionStrategy::Auto, "auto");  // CLIP (causal or not costs the same here)
  // Memory-bound ops (no GFLOP/s).
  group_norm(2, 320, 64);
  group_norm(1, 128, 512);
  geglu(8192, 1280);
  layer_norm(8192, 320);
  permute(2, 320, 64);
  // bf16 products at the fp32 rows' shapes.
  linear(8192, 320, 2560, DType::BF16);
  linear(8192, 1280, 320, DType::BF16);
  linear(8192, 320, 320, DType::BF16);
  conv(2, 320, 64, 320, 3, Conv2dParams::symmetric(1), DType::BF16);
  conv(2, 1280, 16, 1280, 3, Conv2dParams::symmetric(1), DType::BF16);
  conv(2, 320, 64, 320, 3, Conv2dParams::symmetric(1, 2), DType::BF16);
  conv(2, 320, 64, 320, 1, Conv2dParams{}, DType::BF16);
  conv(1, 256, 256, 256, 3, Conv2dParams::symmetric(1), DType::BF16);
  conv(1, 512, 64, 512, 3, Conv2dParams::symmetric(1), DType::BF16);
  conv(1, 512, 128, 512, 3, Conv2dParams::symmetric(1), DType::BF16);
  conv(1, 128, 512, 128, 3, Conv2dParams::symmetric(1), DType::BF16);
  attention(2, 4096, 4096, 8, 40, AttentionStrategy::Flash, "flash", 0, DType::BF16);
  attention(2, 4096, 77, 8, 40, AttentionStrategy::Auto, "auto", 0, DType::BF16);
  attention(2, 1024, 1024, 8, 80, AttentionStrategy::Full, "full", 0, DType::BF16);
  // fp16 weights (widened to f32 on the CPU) and bf16 weights (bf16 products) at the UNet's costliest weight
  // shapes, each beside its fp32 row.
  for (const DType wt : {DType::F32, DType::F16, DType::BF16}) {
    linear(256, 1280, 10240, wt);  // GEGLU projection at 16x16 (batch 2, per sample)
    linear(256, 5120, 1280, wt);   // feed-forward out at 16x16
    linear(512, 1280, 1280, wt);   // attention projections at 16x16
    linear(2048, 640, 640, wt);    // attention projections at 32x32
    conv(2, 2560, 16, 1280, 3, Conv2dParams::symmetric(1), wt);  // up block resnet (im2col: few tiles)
    conv(2, 2560, 8, 1280, 3, Conv2dParams::symmetric(1), wt);
    conv(2, 1280, 16, 1280, 3, Conv2dParams::symmetric(1), wt);
    conv(2, 1280, 8, 1280, 3, Conv2dParams::symmetric(1), wt);
    conv(1, 1280, 16, 1280, 3, Conv2dParams::symmetric(1), wt);  // without CFG (LCM)
    linear(4096, 320, 320, wt);    // attention projections at 64x64 (per sample)
    conv(2, 640, 32, 640, 3, Conv2dParams::symmetric(1), wt);    // Winograd
    conv(1, 960, 64, 320, 3, Conv2dParams::symmetric(1), wt);
    conv(2, 1280, 32, 640, 1, Conv2dParams{}, wt);               // resnet shortcut
  }
  // TAESD's decoder convolutions (64 channels) at 512x512.
  conv(1, 64, 64, 64, 3, Conv2dParams::symmetric(1));
  conv(1, 64, 128, 64, 3, Conv2dParams::symmetric(1));
  conv(1, 64, 256, 64, 3, Conv2dParams::symmetric(1));
  conv(1, 64, 512, 64, 3, Conv2dParams::symmetric(1));
  conv(1, 64, 512, 64, 3, Conv2dParams::symmetric(1), DType::BF16);
  return cases;
}

int run(int argc, char** argv) {
  std::vector<int> thread_counts{1, 2};
  std::string filter;
  bool reference = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      thread_counts = {std::atoi(argv[++i])};
    } else if (!std::strcmp(argv[i], "--filter") && i + 1 < argc) {
      filter = argv[++i];
    } else if (!std::strcmp(argv[i], "--backend") && i + 1 < argc) {
      reference = !std::strcmp(argv[++i], "reference");
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--filter substring[|substring...]] [--backend cpu|reference]\n",
                   argv[0]);
      return 2;
    }
  }
  Backend& be = reference ? reference_backend() : cpu_backend();
  const std::vector<Case> cases = make_cases(be, filter);
  for (int threads : thread_counts) {
    set_num_threads(threads);
    const double core_peak = measure_peak_gflops(1), peak = core_peak * threads;
    double load[3] = {0, 0, 0};
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
      if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
      std::fclose(f);
    }
    std::printf("\n## %s backend, %d thread%s; fp32 FMA peak %.1f GFLOP/s per core (%s), %.1f for %d; "
                "bf16 dot products (vdpbf16ps) %.1f per core; load average %.2f\n\n", be.name(), threads,
                threads == 1 ? "" : "s", core_peak, peak_vector_isa(), peak, threads,
                measure_bf16_dot_peak_gflops(), load[0]);
    std::printf("| %-22s | %-30s | %9s | %9s | %8s | %6s | %10s |\n", "op", "shape", "ms", "cpu ms", "GFLOP/s",
                "% peak", "% peak cpu");
    std::printf("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(24, '-').c_str(), std::string(32, '-').c_str(),
                std::string(11, '-').c_str(), std::string(11, '-').c_str(), std::string(10, '-').c_str(),
                std::string(8, '-').c_str(), std::string(12, '-').c_str());
    for (const Case& c : cases) {
      const Timing t = time_op(c.run);
      if (c.flops > 0) {
        const double gflops = c.flops / (t.wall_ms * 1e-3) / 1e9;
        // % of peak by CPU time: the rate per busy core, what the kernels achieve when they have the cores.
        const double cpu_efficiency = c.flops / (t.cpu_ms * 1e-3) / 1e9 / core_peak;
        std::printf("| %-22s | %-30s | %9.2f | %9.2f | %8.1f | %5.1f%% | %9.1f%% |\n", c.op.c_str(), c.shape.c_str(),
                    t.wall_ms, t.cpu_ms, gflops, 100.0 * gflops / peak, 100.0 * cpu_efficiency);
      } else {
        std::printf("| %-22s | %-30s | %9.2f | %9.2f | %8s | %6s | %10s |\n", c.op.c_str(), c.shape.c_str(),
                    t.wall_ms, t.cpu_ms, "-", "-", "-");
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace kakusan

int main(int argc, char** argv) {
  try {
    return kakusan::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ops: %s\n", e.what());
    return 1;
  }
}
