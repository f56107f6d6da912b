// Test helper: a child process (the kakusan CLI in the e2e tests) with stdin from /dev/null and stdout and
// stderr in files, waited for under a deadline so that a hang fails a test instead of stalling it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kakusan::testing {

// The whole file as bytes ("" if it cannot be read).
std::string read_text(const std::filesystem::path& path);

// "exit code N", "signal N" or "wait status N"; "killed after the timeout" for nullopt.
std::string describe_wait_status(const std::optional<int>& status);

// How a waited-for child ended.
struct ChildEnd {
  std::optional<int> status;  // the wait status; nullopt if it was killed at the deadline
  int64_t peak_rss_bytes = 0;  // ru_maxrss of the child (also counts the forked copy before the exec)
  double seconds = 0;          // from start to reaped
};

// One child running `program args...`, started as a shell would start it: SIGINT at its default action and no
// signal blocked (a test runner may have ignored or blocked some, and both survive exec). The destructor
// kills and reaps a child still running (a failed assertion left it so).
class ChildProcess {
 public:
  ChildProcess() = default;
  // Forks and execs; its stdout and stderr go to log_dir/stdout and log_dir/stderr. pid() < 0 if fork failed;
  // a failed exec ends the child with exit code 127.
  ChildProcess(const std::string& program, const std::vector<std::string>& args,
               const std::filesystem::path& log_dir);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // The child's pid while it runs; -1 once it has been reaped (or if it never started).
  pid_t pid() const { return pid_; }

  // The wait status if the child has ended (it is then reaped), nullopt while it runs. Does not block.
  std::optional<int> poll();

  // Polls every poll_interval until the child ends; past the timeout, kills it (SIGKILL) and reaps it.
  ChildEnd wait(std::chrono::milliseconds timeout, std::chrono::milliseconds poll_interval);

  // SIGKILL and reap, if it is still running.
  void kill_now();

  std::string stdout_text() const { return read_text(stdout_path_); }
  std::string stderr_text() const { return read_text(stderr_path_); }

 private:
  // Reaps the child with wait4() (flags 0 or WNOHANG): true once it is reaped.
  bool reap(int flags);

  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point started_;
  std::filesystem::path stdout_path_, stderr_path_;
  int last_status_ = 0;
  int64_t peak_rss_bytes_ = 0;
};

}  // namespace kakusan::testing
