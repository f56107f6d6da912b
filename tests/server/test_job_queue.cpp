// The job queue with a stand-in runner: FIFO order, the bound, cancelling a queued or a running job, the
// interrupt and the drain.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "server/job_queue.h"

namespace kakusan::server {
namespace {

using namespace std::chrono_literals;

// A runner that holds each job until released, stopping early when the job is cancelled (as the pipeline's
// step callback does).
struct GatedRunner {
  std::mutex mutex;
  std::vector<int> order;
  std::atomic<bool> open{false};
  std::atomic<int> started{0};

  JobQueue::Runner runner() {
    return [this](Job& job) {
      ++started;
      while (!open) {
        if (job.cancel) throw Cancelled();
        std::this_thread::sleep_for(1ms);
      }
      std::lock_guard lock(mutex);
      order.push_back(job.spec.num_images);  // the job's tag
      job.result.emplace();
    };
  }
};

std::shared_ptr<Job> tagged(int tag) {
  auto job = std::make_shared<Job>();
  job->spec.num_images = tag;
  return job;
}

void wait_until(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(condition());
}

TEST(JobQueue, RunsInOrderAndRefusesBeyondItsBound) {
  GatedRunner gate;
  JobQueue queue(2, gate.runner());
  auto a = tagged(1), b = tagged(2), c = tagged(3), d = tagged(4);
  ASSERT_EQ(queue.submit(a), JobQueue::Submitted::Accepted);
  wait_until([&] { return gate.started == 1; });  // a runs; the queue is empty again
  EXPECT_EQ(queue.submit(b), JobQueue::Submitted::Accepted);
  EXPECT_EQ(queue.submit(c), JobQueue::Submitted::Accepted);
  EXPECT_EQ(queue.submit(d), JobQueue::Submitted::Full);
  EXPECT_EQ(queue.queued(), 2u);
  gate.open = true;
  for (auto& job : {a, b, c}) queue.wait(*job, [] { return false; });
  EXPECT_EQ(gate.order, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(c->done && c->result && !c->cancelled);
}

TEST(JobQueue, AbandonedJobsAreCancelledQueuedOrRunning) {
  GatedRunner gate;
  JobQueue queue(4, gate.runner());
  auto running = tagged(1), queued = tagged(2);
  queue.submit(running);
  wait_until([&] { return gate.started == 1; });
  queue.submit(queued);
  queue.wait(*queued, [] { return true; });  // its client went away while it waited
  EXPECT_TRUE(queued->cancelled);
  EXPECT_EQ(queue.queued(), 0u);
  queue.wait(*running, [] { return true; });
  EXPECT_TRUE(running->cancelled);
  EXPECT_FALSE(running->result);
  EXPECT_EQ(gate.started, 1);  // the queued job never ran
}

TEST(JobQueue, InterruptStopsOnlyTheRunningJob) {
  GatedRunner gate;
  JobQueue queue(4, gate.runner());
  EXPECT_FALSE(queue.interrupt());
  auto first = tagged(1), second = tagged(2);
  queue.submit(first);
  wait_until([&] { return gate.started == 1; });
  queue.submit(second);
  EXPECT_TRUE(queue.interrupt());
  queue.wait(*first, [] { return false; });
  EXPECT_TRUE(first->cancelled);
  gate.open = true;
  queue.wait(*second, [] { return false; });
  EXPECT_FALSE(second->cancelled);
  EXPECT_TRUE(second->result);
}

TEST(JobQueue, DrainFinishesAcceptedJobsAndRefusesNewOnes) {
  GatedRunner gate;
  JobQueue queue(4, gate.runner());
  auto a = tagged(1), b = tagged(2);
  queue.submit(a);
  queue.submit(b);
  auto drained = std::async(std::launch::async, [&] { queue.close_and_drain(); });
  wait_until([&] { return queue.closed(); });
  EXPECT_EQ(queue.submit(tagged(3)), JobQueue::Submitted::Closed);
  EXPECT_EQ(drained.wait_for(50ms), std::future_status::timeout);  // still running a
  gate.open = true;
  drained.get();
  EXPECT_TRUE(a->done && a->result);
  EXPECT_TRUE(b->done && b->result);
}

TEST(JobQueue, RunnerErrorsAreReported) {
  JobQueue queue(1, [](Job&) { throw Error("boom"); });
  auto job = tagged(1);
  queue.submit(job);
  queue.wait(*job, [] { return false; });
  EXPECT_EQ(job->error, "boom");
  EXPECT_FALSE(job->cancelled);
}

}  // namespace
}  // namespace kakusan::server
