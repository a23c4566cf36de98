#include "common/work_pool.h"

#include <utility>

namespace labtrace {

WorkPool::WorkPool(std::string name, int max_threads, int max_queued)
    : name_(std::move(name)),
      max_threads_(max_threads < 1 ? 1 : max_threads),
      max_queued_(max_queued < 0 ? 0 : max_queued) {}

WorkPool::~WorkPool() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

bool WorkPool::Submit(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  const int waiting = static_cast<int>(queue_.size());
  if (idle_ > waiting) {
    queue_.push_back(std::move(fn));  // An idle thread takes it.
    return true;
  }
  if (static_cast<int>(threads_.size()) < max_threads_) {
    queue_.push_back(std::move(fn));
    ++idle_;  // The new thread counts as idle until it takes work.
    threads_.emplace_back([this] { Loop(); });
    return true;
  }
  if (waiting >= max_queued_) return false;
  queue_.push_back(std::move(fn));
  return true;
}

void WorkPool::Loop() {
  for (;;) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // Stopping, nothing left to run.
      fn = std::move(queue_.front());
      queue_.pop_front();
      --idle_;
      ++busy_;
    }
    fn();
    absl::MutexLock lock(&mu_);
    --busy_;
    ++idle_;
  }
}

int WorkPool::busy() const {
  absl::MutexLock lock(&mu_);
  return busy_;
}

int WorkPool::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

}  // namespace labtrace
