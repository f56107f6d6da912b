// One pipeline, one generation at a time: a bounded FIFO of jobs run by a single worker thread. HTTP handler
// threads submit a job and wait for it; a full queue is refused at once (the server answers 503 with
// Retry-After), a cancelled job (its client went away, or /sdapi/v1/interrupt) stops after the current
// denoising step, and close_and_drain() refuses new jobs and finishes every accepted one (SIGTERM).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "kakusan/pipeline.h"
#include "server/image_request.h"

namespace kakusan::server {

struct Job {
  ImageJob spec;
  GenerateParams params;

  // Progress, written by the worker and read by /sdapi/v1/progress.
  std::atomic<int> step{0}, steps{0};
  std::atomic<bool> cancel{false};
  std::chrono::steady_clock::time_point started{};

  // The outcome, valid once done (the queue's mutex orders it with `done`).
  bool done = false;
  bool cancelled = false;  // stopped before finishing (interrupt or client gone)
  std::optional<GenerateResult> result;
  std::string error;       // a failure other than cancellation
  std::string sampler;     // the scheduler class that ran it
};

class JobQueue {
 public:
  // Runs one job on the worker thread: fills job.result, or throws (Cancelled, Error, ...).
  using Runner = std::function<void(Job& job)>;

  JobQueue(size_t capacity, Runner runner);
  ~JobQueue();  // close_and_drain()
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  enum class Submitted { Accepted, Full, Closed };
  Submitted submit(const std::shared_ptr<Job>& job);

  // Blocks until `job` is done. Every poll interval asks `abandoned()`; when it says true the job is
  // cancelled (taken out of the queue, or stopped after its current step) and wait returns once it is done.
  void wait(Job& job, const std::function<bool()>& abandoned);

  // Cancels the running job, if any (A1111's interrupt); true if there was one.
  bool interrupt();

  // Refuses new jobs, finishes every accepted one, and stops the worker. Idempotent.
  void close_and_drain();

  size_t queued() const;
  std::shared_ptr<Job> running() const;
  bool closed() const;

 private:
  void work();

  const size_t capacity_;
  Runner runner_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::shared_ptr<Job> running_;
  bool closed_ = false;
  std::thread worker_;
};

}  // namespace kakusan::server
