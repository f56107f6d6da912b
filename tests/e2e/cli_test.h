// The fixture of the CLI's end-to-end tests: a fresh folder per test (with an empty out/) and the `kakusan`
// binary run in it as a child process.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "support/child_process.h"

namespace kakusan::testing {

struct CliRun {
  int exit_code = -1;  // -1 when it did not exit normally (a signal, or still running after 5 minutes)
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("kakusan_cli_" + std::to_string(getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "out");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `kakusan argv...` in the test's folder.
  CliRun run_cli(const std::vector<std::string>& argv) const {
    ChildProcess child(KAKUSAN_CLI_PATH, argv, dir_);
    const ChildEnd end = child.wait(std::chrono::minutes(5), std::chrono::milliseconds(10));
    CliRun r;
    r.exit_code = end.status && WIFEXITED(*end.status) ? WEXITSTATUS(*end.status) : -1;
    r.out = child.stdout_text();
    r.err = child.stderr_text();
    return r;
  }

  std::filesystem::path out(const char* name) const { return dir_ / "out" / name; }
  bool nothing_written() const { return std::filesystem::is_empty(dir_ / "out"); }

  std::filesystem::path dir_;
};

}  // namespace kakusan::testing
