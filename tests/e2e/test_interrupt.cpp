// Ctrl-C during `kakusan generate`, end to end: the CLI runs as a child process with its output in files, gets
// a real SIGINT once denoising has started, and must stop after the current step with exit code 130, say so on
// stderr, and write nothing (an existing output file keeps its bytes). A second SIGINT, once the first has
// been handled, ends the process at once (the handler is installed with SA_RESETHAND, so it is SIGINT's
// default action: death by the signal).
//
// Every wait polls with a deadline and kills the child on timeout, so a broken interrupt path fails the test
// instead of hanging it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Generous: the machine may be shared with builds and fuzzers. A normal run takes a few seconds.
constexpr auto kStartTimeout = 60s;
constexpr auto kExitTimeout = 60s;
constexpr auto kPollInterval = 5ms;

using testing::ChildProcess;
using testing::read_text;

void write_text(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::vector<std::string> file_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  return names;
}

// The "SigCgt" mask of /proc/<pid>/status: the signals the process has a handler for.
std::optional<unsigned long long> caught_signals(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("SigCgt:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  return std::nullopt;
}

bool catches_sigint(pid_t pid) {
  const auto mask = caught_signals(pid);
  return mask && (*mask & (1ull << (SIGINT - 1))) != 0;
}

// One `kakusan generate` child with stdout and stderr in files of a fresh folder; out/ is where its outputs go.
class InterruptCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kakusan_e2e_interrupt_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "out");
  }

  void TearDown() override {
    child_.kill_now();  // a failed assertion left it running
    fs::remove_all(dir_);
  }

  // Starts `kakusan generate <args>`.
  void start(const std::vector<std::string>& args) {
    std::vector<std::string> generate_args = {"generate"};
    generate_args.insert(generate_args.end(), args.begin(), args.end());
    child_ = ChildProcess(KAKUSAN_CLI_PATH, generate_args, dir_);
    ASSERT_GE(child_.pid(), 0) << "fork failed";
  }

  // Waits until the child's stderr contains `text`. False (with the reason in *why) if the child exits first
  // or the deadline passes.
  bool wait_for_stderr(const std::string& text, std::string* why) {
    const auto deadline = Clock::now() + kStartTimeout;
    while (Clock::now() < deadline) {
      if (stderr_text().find(text) != std::string::npos) return true;
      if (const auto status = child_.poll()) {
        *why = "the CLI ended (wait status " + std::to_string(*status) + ") before printing \"" + text +
               "\"; stderr:\n" + stderr_text();
        return false;
      }
      std::this_thread::sleep_for(kPollInterval);
    }
    *why = "no \"" + text + "\" on stderr within the timeout; stderr:\n" + stderr_text();
    return false;
  }

  // Waits until the first SIGINT has been handled: SA_RESETHAND has removed the handler. False on timeout or
  // if the child has already ended.
  bool wait_until_handler_ran() {
    const auto deadline = Clock::now() + kExitTimeout;
    while (Clock::now() < deadline) {
      if (!catches_sigint(child_.pid())) return caught_signals(child_.pid()).has_value();
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  // The child's wait status; kills it and returns nullopt if it does not end within the timeout.
  std::optional<int> wait_exit() { return child_.wait(kExitTimeout, kPollInterval).status; }

  std::string stdout_text() const { return child_.stdout_text(); }
  std::string stderr_text() const { return child_.stderr_text(); }
  fs::path out(const char* name) const { return dir_ / "out" / name; }

  // Far more steps than the test lets it run (the schedule allows up to 999 here), each long enough at this size
  // that the run cannot finish between "denoising" appearing and the SIGINT, even on a busy machine.
  std::vector<std::string> long_run_args(int size = 256) const {
    return {"--model",  (*testing::golden_dir() / "tiny-sd").string(),
            "--prompt", "x",
            "--steps",  "500",
            "--height", std::to_string(size),
            "--width",  std::to_string(size),
            "--seed",   "0",
            "--output", out("out.png").string()};
  }

  void interrupt_during_denoising();

  ChildProcess child_;
  fs::path dir_;
};

constexpr const char* kInterruptedMessage = "kakusan: interrupted; no files written";

// Sends one SIGINT once denoising has started and checks the clean stop: exit code 130, the message, and no
// sign of the rest of the run (the VAE never ran, nothing was reported written).
void InterruptCli::interrupt_during_denoising() {
  std::string why;
  ASSERT_TRUE(wait_for_stderr("denoising", &why)) << why;
  ASSERT_EQ(kill(child_.pid(), SIGINT), 0);
  const std::optional<int> status = wait_exit();
  ASSERT_TRUE(status) << "the CLI did not end within the timeout after SIGINT; stderr:\n" << stderr_text();
  ASSERT_TRUE(WIFEXITED(*status)) << "ended by signal " << (WIFSIGNALED(*status) ? WTERMSIG(*status) : 0);
  const std::string err = stderr_text();
  EXPECT_EQ(WEXITSTATUS(*status), 130) << err;
  EXPECT_NE(err.find(kInterruptedMessage), std::string::npos) << err;
  EXPECT_EQ(err.find("decoding"), std::string::npos) << "it went on past the denoising loop:\n" << err;
  EXPECT_EQ(stdout_text(), "");  // no "wrote ...", no "seed: ..." (the seed is given)
}

TEST_F(InterruptCli, SigintDuringDenoisingExits130AndWritesNoFile) {
  KK_REQUIRE_GOLDEN();
  // Two prompts, a grid and saved tensors: every kind of output the command can write.
  std::vector<std::string> args = long_run_args();
  args.insert(args.end(), {"--prompt", "y", "--grid", "1x2", "--save-tensors", out("tensors.safetensors").string()});
  start(args);
  ASSERT_NO_FATAL_FAILURE(interrupt_during_denoising());
  EXPECT_EQ(file_names(dir_ / "out"), std::vector<std::string>{});  // not even a temporary file
}

TEST_F(InterruptCli, SigintLeavesAnExistingOutputFileUntouched) {
  KK_REQUIRE_GOLDEN();
  const std::string previous = "an earlier image, not a PNG at all\n";
  write_text(out("out.png"), previous);
  start(long_run_args());
  ASSERT_NO_FATAL_FAILURE(interrupt_during_denoising());
  EXPECT_EQ(read_text(out("out.png")), previous);
  EXPECT_EQ(file_names(dir_ / "out"), std::vector<std::string>{"out.png"});
}

TEST_F(InterruptCli, SecondSigintKillsAtOnce) {
  KK_REQUIRE_GOLDEN();
  // A 512x512 image: one step takes long enough for the second SIGINT to land before the first one's step ends.
  start(long_run_args(512));
  std::string why;
  ASSERT_TRUE(wait_for_stderr("denoising", &why)) << why;
  ASSERT_TRUE(catches_sigint(child_.pid())) << "the CLI has no SIGINT handler while denoising";
  ASSERT_EQ(kill(child_.pid(), SIGINT), 0);
  // Two signals sent back to back could merge into one pending signal; wait until the first was delivered.
  ASSERT_TRUE(wait_until_handler_ran()) << "the SIGINT handler did not run (or the CLI ended); stderr:\n"
                                        << stderr_text();
  ASSERT_EQ(kill(child_.pid(), SIGINT), 0);
  const std::optional<int> status = wait_exit();
  ASSERT_TRUE(status) << "the CLI did not end within the timeout after two SIGINTs; stderr:\n" << stderr_text();
  ASSERT_TRUE(WIFSIGNALED(*status)) << "expected death by SIGINT, got exit code "
                                    << (WIFEXITED(*status) ? WEXITSTATUS(*status) : -1) << "; stderr:\n"
                                    << stderr_text();
  EXPECT_EQ(WTERMSIG(*status), SIGINT);
  EXPECT_EQ(stderr_text().find(kInterruptedMessage), std::string::npos) << "it finished the step instead";
  EXPECT_EQ(file_names(dir_ / "out"), std::vector<std::string>{});
}

}  // namespace
}  // namespace kakusan
