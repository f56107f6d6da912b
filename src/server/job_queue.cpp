#include "server/job_queue.h"

#include <algorithm>

namespace kakusan::server {

namespace {
constexpr auto kPollInterval = std::chrono::milliseconds(100);
}  // namespace

JobQueue::JobQueue(size_t capacity, Runner runner)
    : capacity_(capacity), runner_(std::move(runner)), worker_([this] { work(); }) {}

JobQueue::~JobQueue() { close_and_drain(); }

JobQueue::Submitted JobQueue::submit(const std::shared_ptr<Job>& job) {
  std::lock_guard lock(mutex_);
  if (closed_) return Submitted::Closed;
  if (queue_.size() >= capacity_) return Submitted::Full;
  queue_.push_back(job);
  changed_.notify_all();
  return Submitted::Accepted;
}

void JobQueue::wait(Job& job, const std::function<bool()>& abandoned) {
  std::unique_lock lock(mutex_);
  while (!job.done) {
    if (changed_.wait_for(lock, kPollInterval, [&] { return job.done; })) break;
    if (job.cancel || !abandoned()) continue;
    job.cancel = true;
    // A queued job is simply dropped; a running one sees `cancel` after its current step.
    auto it = std::find_if(queue_.begin(), queue_.end(), [&](const auto& j) { return j.get() == &job; });
    if (it != queue_.end()) {
      queue_.erase(it);
      job.cancelled = true;
      job.done = true;
    }
  }
}

bool JobQueue::interrupt() {
  std::lock_guard lock(mutex_);
  if (!running_) return false;
  running_->cancel = true;
  return true;
}

void JobQueue::close_and_drain() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

size_t JobQueue::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

std::shared_ptr<Job> JobQueue::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

bool JobQueue::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

void JobQueue::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return;  // closed and drained
    running_ = queue_.front();
    queue_.pop_front();
    Job& job = *running_;
    job.started = std::chrono::steady_clock::now();  // under the lock: running() readers see it
    lock.unlock();
    bool cancelled = false;
    std::string error;
    try {
      if (job.cancel) throw Cancelled();
      runner_(job);
    } catch (const Cancelled&) {
      cancelled = true;
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "generation failed";
    }
    lock.lock();
    job.cancelled = cancelled;
    job.error = error;
    job.done = true;
    running_.reset();
    changed_.notify_all();
  }
}

}  // namespace kakusan::server
