#include "agent/session/stop_scheduler.h"

#include <utility>

namespace labtrace::agent {

StopScheduler::StopScheduler(std::function<std::vector<Due>()> find_due,
                             std::function<void(const Due&)> stop,
                             absl::Duration interval)
    : find_due_(std::move(find_due)),
      stop_(std::move(stop)),
      interval_(interval) {}

StopScheduler::~StopScheduler() {
  std::vector<Worker> workers;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  {
    absl::MutexLock lock(&mu_);
    workers.swap(workers_);
  }
  for (Worker& w : workers) w.thread.join();
}

void StopScheduler::Start() { thread_ = std::thread([this] { Loop(); }); }

void StopScheduler::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void StopScheduler::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || woken_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&wake), interval_);
      if (stopping_) return;
      woken_ = false;
      // Join the workers that are done, so threads do not pile up.
      for (auto it = workers_.begin(); it != workers_.end();) {
        if (*it->done) {
          it->thread.join();
          it = workers_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Due& due : find_due_()) {
      absl::MutexLock lock(&mu_);
      if (stopping_ || !in_flight_.insert(due.name).second) continue;
      auto done = std::make_shared<bool>(false);
      workers_.push_back(
          {std::thread([this, due = std::move(due), done] {
             stop_(due);
             absl::MutexLock lock(&mu_);
             in_flight_.erase(due.name);
             *done = true;
           }),
           done});
    }
  }
}

}  // namespace labtrace::agent
