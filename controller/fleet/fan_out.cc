#include "controller/fleet/fan_out.h"

namespace labtrace::controller {

const char* HostOutcomeName(HostOutcome outcome) {
  switch (outcome) {
    case HostOutcome::kOk:
      return "ok";
    case HostOutcome::kFailed:
      return "failed";
    case HostOutcome::kUnreachable:
      return "unreachable";
    case HostOutcome::kTimedOut:
      return "timed_out";
  }
  return "unknown";
}

HostOutcome ClassifyStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return HostOutcome::kOk;
    case absl::StatusCode::kUnavailable:
      return HostOutcome::kUnreachable;
    case absl::StatusCode::kDeadlineExceeded:
      return HostOutcome::kTimedOut;
    default:
      return HostOutcome::kFailed;
  }
}

std::shared_ptr<AgentClient> ClientPool::Get(const Host& host) {
  {
    absl::MutexLock lock(&mu_);
    auto it = clients_.find(host.name);
    if (it != clients_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.client;
    }
  }
  // Channels are made and dropped outside the lock: both take a while, and
  // every worker of a fan-out passes through here.
  std::shared_ptr<AgentClient> made = factory_(host);
  std::vector<std::shared_ptr<AgentClient>> evicted;
  std::shared_ptr<AgentClient> result;
  {
    absl::MutexLock lock(&mu_);
    auto it = clients_.find(host.name);
    if (it != clients_.end()) {  // Another worker made one meanwhile.
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      result = it->second.client;
      evicted.push_back(std::move(made));
    } else {
      lru_.push_front(host.name);
      clients_[host.name] = Entry{made, lru_.begin()};
      result = std::move(made);
      while (clients_.size() > std::max<std::size_t>(max_kept_, 1)) {
        auto last = clients_.find(lru_.back());
        evicted.push_back(std::move(last->second.client));
        clients_.erase(last);
        lru_.pop_back();
      }
    }
  }
  evicted.clear();
  return result;
}

}  // namespace labtrace::controller
