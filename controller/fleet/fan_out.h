// FanOut: runs one operation on many hosts at once, at most `parallel` in
// flight, and returns one HostResult per host in input order. Each host's
// call carries its own deadline (now + per_host_timeout when it starts), so
// a dead or hung host costs at most its deadline and never blocks others.
//
//   auto results = FanOut<v1::AgentInfo>(hosts, clients, {.parallel = 32},
//       [](AgentClient& c, const Host&, absl::Time deadline) {
//         return c.GetAgentInfo(deadline);
//       });

#ifndef LABTRACE_CONTROLLER_FLEET_FAN_OUT_H_
#define LABTRACE_CONTROLLER_FLEET_FAN_OUT_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/client/agent_client.h"
#include "controller/inventory/inventory.h"

namespace labtrace::controller {

enum class HostOutcome {
  kOk,      // The agent did it.
  kFailed,  // The agent refused or the operation failed (message says why).
  kUnreachable,  // No connection (refused, no route, name not resolved).
  kTimedOut,     // Connected (or trying) but no answer before the deadline.
};

const char* HostOutcomeName(HostOutcome outcome);  // "ok", "failed", ...

// Maps a call's status to an outcome: UNAVAILABLE -> unreachable,
// DEADLINE_EXCEEDED -> timed_out, other errors -> failed.
HostOutcome ClassifyStatus(const absl::Status& status);

template <typename T>
struct HostResult {
  Host host;
  HostOutcome outcome = HostOutcome::kOk;
  absl::Status status;  // OK iff outcome == kOk.
  T value{};            // Valid iff outcome == kOk.
  absl::Duration took;
};

struct FanOutOptions {
  int parallel = 256;
  absl::Duration per_host_timeout = absl::Seconds(30);
  // Where deadlines and durations come from (a fake in tests).
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// Clients per host, created on first use and reused across operations
// (the steps of a run). At most `max_kept` are kept (the least recently
// used go first; one in use lives on until its user is done): a fleet of
// 10,000 hosts must not hold 10,000 channels and their connections.
class ClientPool {
 public:
  explicit ClientPool(ClientFactory factory, std::size_t max_kept = 1024)
      : factory_(std::move(factory)), max_kept_(max_kept) {}
  std::shared_ptr<AgentClient> Get(const Host& host);

 private:
  struct Entry {
    std::shared_ptr<AgentClient> client;
    std::list<std::string>::iterator lru;
  };
  ClientFactory factory_;
  const std::size_t max_kept_;
  absl::Mutex mu_;
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // Front: most recent.
  std::map<std::string, Entry> clients_ ABSL_GUARDED_BY(mu_);
};

template <typename T>
std::vector<HostResult<T>> FanOut(
    const std::vector<Host>& hosts, ClientPool& clients,
    const FanOutOptions& options,
    const std::function<absl::StatusOr<T>(AgentClient&, const Host&,
                                          absl::Time)>& op) {
  std::vector<HostResult<T>> results(hosts.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < hosts.size(); i = next++) {
      HostResult<T>& r = results[i];
      r.host = hosts[i];
      const absl::Time start = options.clock();
      const std::shared_ptr<AgentClient> client = clients.Get(hosts[i]);
      absl::StatusOr<T> v =
          op(*client, hosts[i], start + options.per_host_timeout);
      r.took = options.clock() - start;
      if (v.ok()) {
        r.value = std::move(*v);
      } else {
        r.status = v.status();
        r.outcome = ClassifyStatus(r.status);
      }
    }
  };
  const std::size_t n =
      std::min<std::size_t>(std::max(options.parallel, 1), hosts.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  if (n > 0) worker();
  for (std::thread& t : threads) t.join();
  return results;
}

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_FLEET_FAN_OUT_H_
