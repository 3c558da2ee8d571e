#pragma once
// A fixed-size pool of worker threads running queued tasks; used to score rewards in parallel.

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace grpo::detail {

class ThreadPool {
 public:
  // threads == 0 means std::thread::hardware_concurrency() (at least 1).
  explicit ThreadPool(std::size_t threads) {
    if (threads == 0) threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  std::size_t size() const { return workers_.size(); }

  // Runs every task and returns when all have finished. Tasks must not throw (wrap them) and must not wait on
  // other tasks of this pool.
  void run_all(std::vector<std::function<void()>> tasks) {
    if (tasks.empty()) return;
    std::size_t remaining = tasks.size();
    std::mutex done_mutex;
    std::condition_variable done;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& task : tasks) {
        queue_.push_back([&, task = std::move(task)] {
          task();
          std::lock_guard<std::mutex> done_lock(done_mutex);
          if (--remaining == 0) done.notify_all();
        });
      }
    }
    wake_.notify_all();
    std::unique_lock<std::mutex> lock(done_mutex);
    done.wait(lock, [&] { return remaining == 0; });
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> queue_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

}  // namespace grpo::detail
