// WorkPool: a bounded set of threads for one kind of work, with a bounded
// queue. Submit() refuses, instead of queueing without end, when every thread
// is busy and the queue is full: the caller then answers "busy, retry" at
// once. The agent gives each kind of call its own pool (agent/service/
// agent_pools.h), so hour-long step commands or slow downloads can never take
// the threads an emergency stop needs.
//
// Threads are started on demand up to the limit and then kept. Destruction
// stops accepting work, runs what is queued, and joins.
//
// Usage:
//   WorkPool pool("control", /*threads=*/16, /*max_queued=*/64);
//   if (!pool.Submit([] { ... })) { /* busy */ }

#ifndef LABTRACE_COMMON_WORK_POOL_H_
#define LABTRACE_COMMON_WORK_POOL_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace labtrace {

class WorkPool {
 public:
  WorkPool(std::string name, int max_threads, int max_queued);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Runs `fn` on a pool thread. False, without running it, when all
  // threads are busy and `max_queued` items already wait, or after
  // shutdown began.
  bool Submit(std::function<void()> fn);

  const std::string& name() const { return name_; }
  int max_threads() const { return max_threads_; }
  // Threads running work now, and items waiting.
  int busy() const;
  int queued() const;

 private:
  void Loop();

  const std::string name_;
  const int max_threads_;
  const int max_queued_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace labtrace

#endif  // LABTRACE_COMMON_WORK_POOL_H_
