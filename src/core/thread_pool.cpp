#include "core/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace kakusan {
namespace {

// Persistent workers woken once per parallel_for. The caller runs chunk 0 itself, so a pool of n threads
// holds n - 1 workers. Workers sleep on a condition variable between jobs; BLAS's own threads run only
// while ours sleep, so kernels never compete with GEMMs for the cores.
class ThreadPool {
 public:
  explicit ThreadPool(int threads) { start(threads); }
  ~ThreadPool() { stop(); }

  int size() const { return threads_; }

  void resize(int threads) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    stop();
    start(threads);
  }

  void run(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t max_chunks = (n + grain - 1) / grain;
    const int chunks = int(std::min<int64_t>(threads_, max_chunks));
    // Inline when there is nothing to share, when called from inside a worker (nested), or when another
    // thread is already using the pool.
    if (chunks <= 1 || inside_pool_) {
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> run_lock(run_mutex_, std::try_to_lock);
    if (!run_lock.owns_lock()) {
      fn(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      job_n_ = n;
      job_chunks_ = chunks;
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    inside_pool_ = true;
    run_chunk(0);
    inside_pool_ = false;
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  void start(int threads) {
    threads_ = std::max(threads, 1);
    quit_ = false;
    // Workers start having seen the current generation, so they wait for the next job.
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i, g = generation_] { worker(i, g); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  // Chunk c of the current job: contiguous, sizes differ by at most one.
  void run_chunk(int c) {
    const int64_t begin = job_n_ * c / job_chunks_;
    const int64_t end = job_n_ * (c + 1) / job_chunks_;
    try {
      if (begin < end) (*job_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void worker(int index, uint64_t seen) {
    inside_pool_ = true;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
        if (index >= job_chunks_) continue;
      }
      run_chunk(index);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time
  std::mutex mutex_;      // guards the job fields below
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
  std::exception_ptr error_;

  static thread_local bool inside_pool_;
};

thread_local bool ThreadPool::inside_pool_ = false;

int default_threads() {
  if (const char* env = std::getenv("KAKUSAN_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1, int(std::thread::hardware_concurrency()));
}

ThreadPool& pool() {
  static ThreadPool instance([] {
    const int n = default_threads();
    openblas_set_num_threads(n);
    return n;
  }());
  return instance;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  n = std::max(n, 1);
  pool().resize(n);
  openblas_set_num_threads(n);
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  pool().run(n, fn, grain);
}

}  // namespace kakusan
