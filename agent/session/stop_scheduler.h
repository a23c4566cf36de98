// StopScheduler: the agent's watchdog. About once a second, and whenever it
// is woken, it asks `find_due` which sessions must stop now and why (their
// max duration passed, their lease ran out, they reached max_bytes, the disk
// went below its floor, their tool ended by itself), and runs `stop` for each
// on a thread of its own, so one slow stop (a WPR merge) never delays the
// others. A session is handed out again only after its stop returned.
//
// Threading: find_due runs on the scheduler's thread; stop on worker threads
// (finished workers are joined as new ones start, and all at destruction).

#ifndef LABTRACE_AGENT_SESSION_STOP_SCHEDULER_H_
#define LABTRACE_AGENT_SESSION_STOP_SCHEDULER_H_

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace labtrace::agent {

class StopScheduler {
 public:
  struct Due {
    std::string name;
    std::string reason;  // TraceSession.stop_reason: "max_duration", ...
  };

  StopScheduler(std::function<std::vector<Due>()> find_due,
                std::function<void(const Due&)> stop, absl::Duration interval);
  // Stops the scheduler and joins every worker (their stops complete).
  ~StopScheduler();
  StopScheduler(const StopScheduler&) = delete;
  StopScheduler& operator=(const StopScheduler&) = delete;

  void Start();
  // Makes the scheduler look now (a tool ended, a lease was shortened).
  void Wake();

 private:
  void Loop();

  const std::function<std::vector<Due>()> find_due_;
  const std::function<void(const Due&)> stop_;
  const absl::Duration interval_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
  struct Worker {
    std::thread thread;
    std::shared_ptr<bool> done;  // Guarded by mu_.
  };
  std::vector<Worker> workers_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SESSION_STOP_SCHEDULER_H_
