#include "support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

namespace kakusan::testing {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string describe_wait_status(const std::optional<int>& status) {
  if (!status) return "killed after the timeout";
  if (WIFEXITED(*status)) return "exit code " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) return "signal " + std::to_string(WTERMSIG(*status));
  return "wait status " + std::to_string(*status);
}

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& args,
                           const std::filesystem::path& log_dir)
    : stdout_path_(log_dir / "stdout"), stderr_path_(log_dir / "stderr") {
  // Everything the child needs is built before the fork: after it, only async-signal-safe calls.
  std::vector<std::string> argv_strings = {program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const std::string out_path = stdout_path_.string(), err_path = stderr_path_.string();

  started_ = std::chrono::steady_clock::now();
  pid_ = fork();
  if (pid_ != 0) return;  // the parent (or a failed fork: pid_ < 0)
  const int in = open("/dev/null", O_RDONLY);
  const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || out < 0 || err < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
      dup2(err, STDERR_FILENO) < 0)
    _exit(127);
  signal(SIGINT, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept { *this = std::move(other); }

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill_now();
    pid_ = std::exchange(other.pid_, -1);
    started_ = other.started_;
    stdout_path_ = std::move(other.stdout_path_);
    stderr_path_ = std::move(other.stderr_path_);
    last_status_ = other.last_status_;
    peak_rss_bytes_ = other.peak_rss_bytes_;
  }
  return *this;
}

ChildProcess::~ChildProcess() { kill_now(); }

bool ChildProcess::reap(int flags) {
  if (pid_ <= 0) return false;
  int status = 0;
  rusage usage{};
  if (wait4(pid_, &status, flags, &usage) != pid_) return false;
  pid_ = -1;
  last_status_ = status;
  peak_rss_bytes_ = int64_t(usage.ru_maxrss) * 1024;  // KiB on Linux
  return true;
}

std::optional<int> ChildProcess::poll() {
  if (!reap(WNOHANG)) return std::nullopt;
  return last_status_;
}

ChildEnd ChildProcess::wait(std::chrono::milliseconds timeout, std::chrono::milliseconds poll_interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ChildEnd end;
  while (!(end.status = poll()) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(poll_interval);
  if (!end.status) kill_now();
  end.peak_rss_bytes = peak_rss_bytes_;
  end.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return end;
}

void ChildProcess::kill_now() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  if (!reap(0)) pid_ = -1;  // nothing left to reap
}

}  // namespace kakusan::testing
