#include "agent/session/journal.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "google/protobuf/util/json_util.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {

Journal::Journal(std::filesystem::path path) : path_(std::move(path)) {
  writer_ = std::thread([this] { WriterLoop(); });
}

Journal::~Journal() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_.join();
}

absl::StatusOr<v1::Journal> Journal::Load() const {
  v1::Journal journal;
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return journal;
  absl::StatusOr<std::string> text = ReadFile(path_);
  if (!text.ok()) return text.status();
  if (!google::protobuf::util::JsonStringToMessage(*text, &journal).ok()) {
    return absl::DataLossError(
        absl::StrCat("journal ", PathToUtf8(path_), " is unreadable"));
  }
  return journal;
}

void Journal::Publish(v1::Journal snapshot) {
  absl::MutexLock lock(&mu_);
  pending_ = std::move(snapshot);
  ++published_;
}

bool Journal::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const std::uint64_t target = published_;
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return written_ >= target;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

std::string Journal::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

void Journal::WriterLoop() {
  for (;;) {
    v1::Journal snapshot;
    std::uint64_t seq;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return pending_.has_value() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (!pending_.has_value()) return;  // Stopping with nothing left.
      snapshot = std::move(*pending_);
      pending_.reset();
      seq = published_;
    }
    std::string json;
    google::protobuf::util::JsonPrintOptions opts;
    opts.add_whitespace = true;
    opts.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(snapshot, &json, opts);
    absl::Status s = WriteFileAtomically(path_, json);
    absl::MutexLock lock(&mu_);
    const std::string error = s.ok() ? "" : std::string(s.message());
    if (!error.empty() && error != error_) {
      spdlog::error("cannot write the journal: {}", error);
    } else if (error.empty() && !error_.empty()) {
      spdlog::info("the journal is written again");
    }
    error_ = error;
    written_ = seq;
  }
}

}  // namespace labtrace::agent
