// Without a usable GPU, "cuda" fails at once with one line saying what was found, and the CLI exits 2
// writing nothing. With a GPU, asking for a device past the last one says how many there are.
#include <gtest/gtest.h>

#include <filesystem>

#include "backend/cuda/cuda_registration.h"
#include "backend/registry.h"
#include "support/child_process.h"
#include "support/golden.h"

namespace kakusan {
namespace {

std::string error_of(const std::string& spec) {
  try {
    backend_for_device(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CudaDevice, IsRegistered) {
  const std::vector<std::string> kinds = backend_kinds();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "cuda"), kinds.end());
}

TEST(CudaDevice, WithoutAGpuOneErrorSaysWhatWasFound) {
  const std::string reason = cuda_unavailable_reason();
  if (reason.empty()) GTEST_SKIP() << "a CUDA device is present: this test is for machines without one";
  EXPECT_TRUE(reason == "no NVIDIA driver (libcuda) found" || reason == "driver found, 0 CUDA devices" ||
              reason.rfind("driver found, but", 0) == 0)
      << reason;
  const std::string error = error_of("cuda");
  EXPECT_EQ(error, "device cuda:0: " + reason);
  EXPECT_EQ(error.find('\n'), std::string::npos);
  EXPECT_EQ(error_of("cuda:1"), "device cuda:1: " + reason);
}

TEST(CudaDevice, AnIndexPastTheLastDeviceSaysHowManyThereAre) {
  if (const std::string reason = cuda_unavailable_reason(); !reason.empty())
    GTEST_SKIP() << "no CUDA device: " << reason;
  const std::string error = error_of("cuda:64");
  EXPECT_NE(error.find("device cuda:64 asked, "), std::string::npos) << error;
  EXPECT_NE(error.find("CUDA device"), std::string::npos) << error;
}

TEST(CudaDevice, GenerateWithoutAGpuExits2WritingNothing) {
  const std::string reason = cuda_unavailable_reason();
  if (reason.empty()) GTEST_SKIP() << "a CUDA device is present: this test is for machines without one";
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("kakusan_cuda_device_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path out = dir / "out.png";
  testing::ChildProcess child(KAKUSAN_CLI_PATH,
                              {"generate", "--model", (*testing::golden_dir() / "tiny-sd").string(), "--prompt",
                               "a cat", "--steps", "2", "--device", "cuda", "--output", out.string()},
                              dir);
  const testing::ChildEnd end = child.wait(std::chrono::seconds(60), std::chrono::milliseconds(20));
  ASSERT_TRUE(end.status.has_value()) << "killed after the timeout";
  EXPECT_TRUE(WIFEXITED(*end.status) && WEXITSTATUS(*end.status) == 2) << testing::describe_wait_status(end.status);
  const std::string err = child.stderr_text();
  EXPECT_EQ(err, "kakusan: error: device cuda:0: " + reason + "\n");
  EXPECT_FALSE(std::filesystem::exists(out));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kakusan
