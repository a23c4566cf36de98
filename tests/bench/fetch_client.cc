// fetch_client: a minimal labtrace gRPC client for the benchmarks in
// tests/bench (not a test, not a product tool).
//
// Usage:
//   fetch_client --address HOST:PORT --artifact ID [--out FILE] [--chunk BYTES]
//                [--no-verify]
//       Streams FetchArtifact (offset 0) to FILE (default /dev/null), checks
//       that the offsets are contiguous, and that the total size and SHA-256
//       match those of the first message (OpenSSL EVP, computed while
//       receiving). --no-verify skips the SHA-256 (size is still checked), to
//       separate the client's hashing cost from transfer cost.
//       Prints one line to stdout:
//         fetch bytes=N seconds=S MB/s=R sha256=ok|skipped
//       (MB = 10^6 bytes; seconds from the call's start to the stream's end).
//   fetch_client --address HOST:PORT --start NAME --profile P
//       StartTrace; prints the session state.
//   fetch_client --address HOST:PORT --stop NAME
//       StopTrace; prints the artifact id alone on stdout (size and sha256
//       go to stderr).
//   fetch_client --address HOST:PORT --info [--count N]
//       Calls GetAgentInfo N times (default 1; warms the channel up), prints
//       the version, profile count and per-call latency.
// Every call has a deadline (--timeout SECONDS, default 600). Exit status:
// 0 success, 1 RPC error or verification mismatch, 2 bad usage.

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "labtrace/v1/agent.grpc.pb.h"

namespace {

namespace v1 = labtrace::v1;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string address;
  std::string artifact;
  std::string out = "/dev/null";
  std::uint32_t chunk = 0;
  bool verify = true;
  std::string start;
  std::string profile;
  std::string stop;
  bool info = false;
  int count = 1;
  int timeout_s = 600;
};

[[noreturn]] void Usage(const char* msg) {
  if (msg != nullptr) std::fprintf(stderr, "fetch_client: %s\n", msg);
  std::fprintf(msg != nullptr ? stderr : stdout,
               "usage: fetch_client --address HOST:PORT\n"
               "         (--artifact ID [--out FILE] [--chunk BYTES] "
               "[--no-verify]\n"
               "          | --start NAME --profile P | --stop NAME "
               "| --info [--count N])\n"
               "         [--timeout SECONDS]\n");
  std::exit(msg != nullptr ? 2 : 0);
}

long long ParseNumber(const char* flag, const char* s, long long lo,
                      long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "fetch_client: bad %s value '%s' (want %lld..%lld)\n",
                 flag, s, lo, hi);
    std::exit(2);
  }
  return v;
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--address")
      o.address = value();
    else if (a == "--artifact")
      o.artifact = value();
    else if (a == "--out")
      o.out = value();
    else if (a == "--chunk")
      o.chunk = static_cast<std::uint32_t>(
          ParseNumber("--chunk", value(), 0, 64ll << 20));
    else if (a == "--no-verify")
      o.verify = false;
    else if (a == "--start")
      o.start = value();
    else if (a == "--profile")
      o.profile = value();
    else if (a == "--stop")
      o.stop = value();
    else if (a == "--info")
      o.info = true;
    else if (a == "--count")
      o.count = static_cast<int>(ParseNumber("--count", value(), 1, 100000));
    else if (a == "--timeout")
      o.timeout_s =
          static_cast<int>(ParseNumber("--timeout", value(), 1, 86400));
    else if (a == "--help" || a == "-h")
      Usage(nullptr);
    else
      Usage(("unknown argument " + a).c_str());
  }
  if (o.address.empty()) Usage("--address is required");
  const int modes =
      !o.artifact.empty() + !o.start.empty() + !o.stop.empty() + o.info;
  if (modes != 1)
    Usage("give exactly one of --artifact, --start, --stop, --info");
  if (!o.start.empty() && o.profile.empty()) Usage("--start needs --profile");
  return o;
}

void SetDeadline(grpc::ClientContext* ctx, int seconds) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(seconds));
}

int RpcFailed(const char* what, const grpc::Status& s) {
  std::fprintf(stderr, "fetch_client: %s failed: code %d: %s\n", what,
               static_cast<int>(s.error_code()), s.error_message().c_str());
  return 1;
}

std::string Hex(const unsigned char* p, unsigned n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (unsigned i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

bool WriteAll(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

struct EvpFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

int Fetch(v1::TraceAgent::Stub& stub, const Options& o) {
  const int fd = ::open(o.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "fetch_client: cannot open %s: %s\n", o.out.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::unique_ptr<EVP_MD_CTX, EvpFree> md(EVP_MD_CTX_new());
  if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) {
    std::fprintf(stderr, "fetch_client: EVP sha256 init failed\n");
    ::close(fd);
    return 1;
  }

  v1::FetchArtifactRequest req;
  req.set_artifact_id(o.artifact);
  req.set_chunk_size(o.chunk);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, o.timeout_s);

  const Clock::time_point t0 = Clock::now();
  std::unique_ptr<grpc::ClientReader<v1::ArtifactChunk>> reader =
      stub.FetchArtifact(&ctx, req);
  v1::ArtifactChunk msg;
  std::uint64_t received = 0, total = 0, messages = 0;
  std::string want_sha;
  bool ok = true;
  while (reader->Read(&msg)) {
    if (messages == 0) {
      total = msg.total_size();
      want_sha = msg.sha256();
    }
    ++messages;
    if (msg.offset() != received) {
      std::fprintf(stderr,
                   "fetch_client: chunk %llu at offset %llu, expected %llu\n",
                   static_cast<unsigned long long>(messages),
                   static_cast<unsigned long long>(msg.offset()),
                   static_cast<unsigned long long>(received));
      ok = false;
      ctx.TryCancel();
      break;
    }
    const std::string& data = msg.data();
    if (o.verify) EVP_DigestUpdate(md.get(), data.data(), data.size());
    if (!WriteAll(fd, data.data(), data.size())) {
      std::fprintf(stderr, "fetch_client: write %s: %s\n", o.out.c_str(),
                   std::strerror(errno));
      ok = false;
      ctx.TryCancel();
      break;
    }
    received += data.size();
  }
  const grpc::Status status = reader->Finish();
  const double seconds =
      std::chrono::duration<double>(Clock::now() - t0).count();
  if (::close(fd) != 0) {
    std::fprintf(stderr, "fetch_client: close %s: %s\n", o.out.c_str(),
                 std::strerror(errno));
    ok = false;
  }
  if (!ok) return 1;
  if (!status.ok()) return RpcFailed("FetchArtifact", status);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned digest_len = 0;
  EVP_DigestFinal_ex(md.get(), digest, &digest_len);
  const std::string got_sha = Hex(digest, digest_len);

  int rc = 0;
  if (received != total) {
    std::fprintf(stderr,
                 "fetch_client: SIZE MISMATCH: received %llu bytes, first "
                 "message announced %llu\n",
                 static_cast<unsigned long long>(received),
                 static_cast<unsigned long long>(total));
    rc = 1;
  }
  if (o.verify && got_sha != want_sha) {
    std::fprintf(stderr,
                 "fetch_client: SHA256 MISMATCH: received %s, first message "
                 "announced %s\n",
                 got_sha.c_str(), want_sha.c_str());
    rc = 1;
  }
  std::printf(
      "fetch bytes=%llu seconds=%.3f MB/s=%.1f messages=%llu "
      "sha256=%s\n",
      static_cast<unsigned long long>(received), seconds,
      seconds > 0 ? static_cast<double>(received) / seconds / 1e6 : 0.0,
      static_cast<unsigned long long>(messages),
      !o.verify ? "skipped"
      : rc == 0 ? "ok"
                : "MISMATCH");
  return rc;
}

int Start(v1::TraceAgent::Stub& stub, const Options& o) {
  v1::StartTraceRequest req;
  req.set_name(o.start);
  req.set_profile(o.profile);
  v1::TraceSession resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, o.timeout_s);
  const grpc::Status s = stub.StartTrace(&ctx, req, &resp);
  if (!s.ok()) return RpcFailed("StartTrace", s);
  std::printf("%s %s\n", resp.name().c_str(),
              v1::TraceState_Name(resp.state()).c_str());
  return 0;
}

int Stop(v1::TraceAgent::Stub& stub, const Options& o) {
  v1::StopTraceRequest req;
  req.set_name(o.stop);
  v1::StopTraceResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, o.timeout_s);
  const grpc::Status s = stub.StopTrace(&ctx, req, &resp);
  if (!s.ok()) return RpcFailed("StopTrace", s);
  const v1::Artifact& a = resp.artifact();
  std::fprintf(
      stderr, "stopped %s: artifact %s (%s) size=%llu sha256=%s\n",
      resp.session().name().c_str(), a.id().c_str(), a.file_name().c_str(),
      static_cast<unsigned long long>(a.size_bytes()), a.sha256().c_str());
  std::printf("%s\n", a.id().c_str());
  return 0;
}

int Info(v1::TraceAgent::Stub& stub, const Options& o) {
  v1::AgentInfo info;
  double total_ms = 0, max_ms = 0;
  for (int i = 0; i < o.count; ++i) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, o.timeout_s);
    const Clock::time_point t0 = Clock::now();
    const grpc::Status s = stub.GetAgentInfo(&ctx, {}, &info);
    const double ms =
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!s.ok()) return RpcFailed("GetAgentInfo", s);
    total_ms += ms;
    if (ms > max_ms) max_ms = ms;
  }
  std::printf(
      "info version=%s host=%s profiles=%d artifacts=%d calls=%d "
      "avg_ms=%.3f max_ms=%.3f\n",
      info.version().c_str(), info.hostname().c_str(), info.profiles_size(),
      info.artifact_count(), o.count, total_ms / o.count, max_ms);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  grpc::ChannelArguments args;
  // A 4 MiB chunk plus its framing is over gRPC's 4 MiB default.
  args.SetMaxReceiveMessageSize(64 << 20);
  if (const char* f = std::getenv("FETCH_MAX_FRAME")) {
    args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, std::atoi(f));
  }
  // As the controller does (controller/client/grpc_agent_client.cc).
  const char* w = std::getenv("FETCH_LOOKAHEAD");
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
              w != nullptr ? std::atoi(w) : 8 << 20);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      o.address, grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<v1::TraceAgent::Stub> stub = v1::TraceAgent::NewStub(channel);
  if (!o.artifact.empty()) return Fetch(*stub, o);
  if (!o.start.empty()) return Start(*stub, o);
  if (!o.stop.empty()) return Stop(*stub, o);
  return Info(*stub, o);
}
