#include "support/golden.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

namespace kakusan::testing {

namespace {
const char* golden_env() {
  const char* env = std::getenv("KAKUSAN_GOLDEN_DIR");
  return env != nullptr && *env != '\0' ? env : nullptr;
}
std::filesystem::path beside_source() {
  return std::filesystem::path(KAKUSAN_SOURCE_DIR) / ".." / "shared" / "golden";
}
}  // namespace

std::optional<std::filesystem::path> golden_dir() {
  if (const char* env = golden_env()) {
    if (std::filesystem::is_directory(env)) return std::filesystem::path(env);
    return std::nullopt;
  }
  if (std::filesystem::is_directory(beside_source())) return std::filesystem::weakly_canonical(beside_source());
  return std::nullopt;
}

std::string golden_absent_reason() {
  if (const char* env = golden_env())
    return std::string("golden kit not found: KAKUSAN_GOLDEN_DIR=") + env + " is not a directory";
  return "golden kit not found: KAKUSAN_GOLDEN_DIR is unset and " + beside_source().lexically_normal().string() +
         " does not exist";
}

namespace {
// ctest runs each test by name (--gtest_filter), from a list discovered when the binary was built. A golden
// case discovered with the kit and run without it matches no test, and GoogleTest would exit 0 with nothing
// run: ctest would call it passed. This says SKIPPED, with the reason, which ctest reports as skipped.
class NothingRanReporter : public ::testing::EmptyTestEventListener {
  void OnTestProgramEnd(const ::testing::UnitTest& unit) override {
    if (unit.test_to_run_count() != 0) return;
    const std::string why = golden_dir() ? "the golden kit's cases differ from those found at build time (rebuild)"
                                         : golden_absent_reason();
    std::printf("[  SKIPPED ] no test matches --gtest_filter=%s: %s\n",
                ::testing::GTEST_FLAG(filter).c_str(), why.c_str());
  }
};
// Registered before main(): every test binary links this file (golden_dir, tensors_close).
const bool nothing_ran_reporter_registered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new NothingRanReporter);
  return true;
}();
}  // namespace

SafetensorsFile open_golden(const std::string& relative) { return SafetensorsFile::open(*golden_dir() / relative); }

namespace {
// The values of any view as doubles, in row-major order.
std::vector<double> values(const TensorView& t) {
  std::vector<double> out(size_t(t.numel()));
  const Tensor dense = Tensor::copy_of(t);
  if (t.dtype == DType::I64) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = double(dense.i64()[i]);
  } else {
    const Tensor f = dense.to_f32();
    for (size_t i = 0; i < out.size(); ++i) out[i] = double(f.f32()[i]);
  }
  return out;
}
}  // namespace

::testing::AssertionResult tensors_close(const TensorView& got, const TensorView& want, Tolerance tol,
                                         const std::string& what) {
  if (!(got.shape == want.shape))
    return ::testing::AssertionFailure() << what << ": shape " << got.shape.str() << " != expected "
                                         << want.shape.str();
  const std::vector<double> g_all = values(got), w_all = values(want);
  int64_t bad = 0, worst = -1;
  double worst_excess = 0, max_abs = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = g_all[size_t(i)], w = w_all[size_t(i)];
    const double diff = std::fabs(g - w);
    max_abs = std::max(max_abs, std::isnan(diff) ? INFINITY : diff);
    const double limit = tol.atol + tol.rtol * std::fabs(w);
    if (!(diff <= limit)) {
      ++bad;
      const double excess = std::isnan(diff) ? INFINITY : diff - limit;
      if (worst < 0 || excess > worst_excess) worst = i, worst_excess = excess;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << got.numel()
                                       << " elements differ beyond atol " << tol.atol << " rtol " << tol.rtol
                                       << "; worst at flat index " << worst << ": got " << g_all[size_t(worst)]
                                       << ", expected " << w_all[size_t(worst)] << " (max |diff| " << max_abs << ")";
}

}  // namespace kakusan::testing
