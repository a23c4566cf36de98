// UploadArtifact: an agent PUTs an artifact's bytes to presigned URLs of an
// object store (whole object or multipart parts), a few parts at a time,
// each read from the file as it is sent (no copy in memory).
//
// Faults: a part that fails with a 5xx answer or a transport error (reset,
// refused, a stalled store: under 1 byte/s for 30 s) is tried again up to
// twice within the deadline; a 4xx answer (bad signature, expired URL,
// missing bucket) fails at once with the store's code and message. The
// first failure stops the other parts; nothing is left behind on the agent
// (an unfinished multipart upload is the caller's to abort). Cancellation of
// the call stops every PUT at once.

#ifndef LABTRACE_AGENT_STORE_UPLOADER_H_
#define LABTRACE_AGENT_STORE_UPLOADER_H_

#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/store/artifact_store.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

absl::StatusOr<v1::UploadArtifactResponse> UploadArtifact(
    const ArtifactStore& store, const v1::UploadArtifactRequest& req,
    const std::function<bool()>& cancelled, absl::Time deadline);

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_STORE_UPLOADER_H_
