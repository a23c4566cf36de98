#include "controller/cli/egress_commands.h"

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_ops.h"
#include "common/file_util.h"
#include "common/time_util.h"
#include "controller/egress/egress.h"
#include "controller/fleet/exit_codes.h"
#include "controller/report/html_report.h"
#include "controller/report/proto_json.h"
#include "controller/report/table.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {
namespace {

using nlohmann::json;

std::string KeyOf(const S3Location& loc, const std::string& url) {
  const std::string head = absl::StrCat("s3://", loc.bucket, "/");
  return absl::StartsWith(url, head) ? url.substr(head.size()) : std::string();
}

json ObjectJson(const std::string& url, const v1::Artifact& a) {
  return {{"url", url}, {"size_bytes", a.size_bytes()}, {"sha256", a.sha256()}};
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3Client>> OpenEgress(CliContext& ctx,
                                                     std::string url,
                                                     S3Location* location) {
  if (url.empty()) url = ctx.inventory().egress.url;
  if (url.empty()) {
    return absl::InvalidArgumentError(
        "no object store: give s3://bucket/prefix (or egress.url in the "
        "inventory)");
  }
  absl::StatusOr<S3Location> loc = S3Location::Parse(url);
  if (!loc.ok()) return loc.status();
  absl::StatusOr<S3Config> cfg = ResolveS3Config(ctx.inventory().egress);
  if (!cfg.ok()) return cfg.status();
  auto client = std::make_unique<S3Client>(*cfg);
  if (absl::Status s = client->CheckBucket(loc->bucket); !s.ok()) return s;
  *location = *loc;
  return client;
}

int FetchToObjectStore(
    CliContext& ctx,
    const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work,
    const std::string& run_id, int code) {
  S3Location loc;
  absl::StatusOr<std::unique_ptr<S3Client>> s3 =
      OpenEgress(ctx, ctx.args().Get("egress"), &loc);
  if (!s3.ok()) {
    ctx.err() << "labtrace fetch: " << s3.status().message() << "\n";
    return kExitUsage;
  }
  EgressOptions eo;
  eo.location = loc;
  eo.part_size = EgressPartSize();
  eo.parallel = ctx.fan().parallel;
  eo.per_file_timeout = ctx.fan().per_host_timeout;
  const bool progress = !ctx.json();
  eo.on_file = [&ctx, progress](const EgressedFile& f) {
    if (!progress) return;
    ctx.err() << "  " << f.status << ": " << f.host << "/"
              << f.artifact.file_name() << " ("
              << HumanBytes(f.artifact.size_bytes()) << ", "
              << HumanDuration(f.took) << ")"
              << (f.error.empty() ? "" : ": ") << f.error << "\n";
  };
  std::vector<EgressedFile> files =
      EgressArtifacts(work, run_id, ctx.clients(), **s3, eo);

  Table t({"HOST", "FILE", "SIZE", "STATUS", "OBJECT"});
  json j = json::array();
  std::uint64_t total = 0;
  int ok = 0;
  for (const EgressedFile& f : files) {
    const std::string url = loc.Url(f.key);
    t.AddRow({f.host, f.artifact.file_name(),
              HumanBytes(f.artifact.size_bytes()), f.status,
              f.ok() ? url : ShortText(f.error, 100)});
    j.push_back({{"host", f.host},
                 {"status", f.status},
                 {"error", f.error},
                 {"retries", f.retries},
                 {"object", ObjectJson(url, f.artifact)},
                 {"artifact", ProtoJson(f.artifact)}});
    if (f.ok()) {
      total += f.artifact.size_bytes();
      ++ok;
    } else {
      code = WorstExit(code, kExitFailed);
    }
  }
  // The run's manifest in the store learns what is there now.
  if (!run_id.empty()) {
    const std::string key = loc.Key(run_id + "/manifest.json");
    absl::StatusOr<std::string> text = (*s3)->GetSmall(loc.bucket, key);
    json m;
    if (text.ok()) m = json::parse(*text, nullptr, false);
    if (!text.ok() || m.is_discarded() || !m.is_object()) {
      m = {{"run_id", run_id}, {"files", json::array()}};
    }
    if (!m.contains("files") || !m["files"].is_array()) m["files"] = json::array();
    for (const EgressedFile& f : files) {
      json* entry = nullptr;
      for (json& e : m["files"]) {
        if (e.value("host", "") == f.host &&
            e.value("artifact_id", "") == f.artifact.id()) {
          entry = &e;
        }
      }
      if (entry == nullptr) {
        m["files"].push_back({{"host", f.host},
                              {"step", f.artifact.session_name()},
                              {"phase", f.artifact.phase()},
                              {"artifact_id", f.artifact.id()},
                              {"file", ""},
                              {"backend", f.artifact.backend()},
                              {"size_bytes", f.artifact.size_bytes()},
                              {"sha256", f.artifact.sha256()}});
        entry = &m["files"].back();
      }
      (*entry)["status"] = f.status;
      (*entry)["error"] = f.error;
      (*entry)["object"] = ObjectJson(loc.Url(f.key), f.artifact);
    }
    absl::Status put =
        (*s3)->PutSmall(loc.bucket, key, m.dump(2) + "\n", "application/json");
    if (!put.ok()) {
      ctx.err() << "warning: the manifest in the store was not updated: "
                << put.message() << "\n";
    }
  }
  if (ctx.json()) {
    ctx.out() << j.dump(2) << "\n";
  } else {
    ctx.out() << t.Render();
    ctx.err() << ok << "/" << files.size() << " file(s), " << HumanBytes(total)
              << " in " << loc.Url(loc.Key(run_id)) << "\n";
  }
  return ctx.interrupted() ? kExitInterrupted : code;
}

int FetchFromObjectStore(CliContext& ctx) {
  const std::string out = ctx.args().Get("out");
  if (out.empty()) {
    ctx.err() << "labtrace fetch: --from needs --out DIR\n";
    return kExitUsage;
  }
  absl::StatusOr<S3Location> loc = S3Location::Parse(ctx.args().Get("from"));
  if (!loc.ok() || loc->prefix.empty()) {
    ctx.err() << "labtrace fetch: --from "
              << (loc.ok() ? "needs s3://bucket/prefix/<run_id>"
                           : std::string(loc.status().message()))
              << "\n";
    return kExitUsage;
  }
  const std::string run_id = loc->prefix.substr(loc->prefix.rfind('/') + 1);
  absl::StatusOr<S3Config> cfg = ResolveS3Config(ctx.inventory().egress);
  if (!cfg.ok()) {
    ctx.err() << "labtrace fetch: " << cfg.status().message() << "\n";
    return kExitUsage;
  }
  S3Client s3(*cfg);
  const std::string manifest_key = loc->Key("manifest.json");
  absl::StatusOr<std::string> text = s3.GetSmall(loc->bucket, manifest_key);
  if (!text.ok()) {
    ctx.err() << "labtrace fetch: cannot read the run's manifest "
              << loc->Url(manifest_key) << ": " << text.status().message()
              << "\n";
    return absl::IsNotFound(text.status()) || absl::IsPermissionDenied(text.status())
               ? kExitUsage
               : kExitFailed;
  }
  json m = json::parse(*text, nullptr, false);
  if (m.is_discarded() || !m.is_object() || !m.contains("files") ||
      !m["files"].is_array()) {
    ctx.err() << "labtrace fetch: " << loc->Url(manifest_key)
              << " is not a labtrace manifest\n";
    return kExitDataProblem;
  }
  const std::filesystem::path dir = PathFromUtf8(out) / PathFromUtf8(run_id);

  struct Item {
    std::string host, key, sha256, status, error;
    std::uint64_t size = 0;
    std::filesystem::path path;
    std::size_t index = 0;  // In the manifest's files.
  };
  std::vector<Item> items;
  for (std::size_t i = 0; i < m["files"].size(); ++i) {
    const json& f = m["files"][i];
    if (!f.contains("object") || !f["object"].is_object()) continue;
    Item it;
    it.index = i;
    it.host = f.value("host", "");
    it.key = KeyOf(*loc, f["object"].value("url", ""));
    it.sha256 = f.value("sha256", "");
    it.size = f.value("size_bytes", std::uint64_t{0});
    const std::string name = it.key.substr(it.key.rfind('/') + 1);
    if (it.key.empty() || !IsSafeFileName(it.host) || !IsSafeFileName(name)) {
      it.status = "failed";
      it.error = "bad object or host name in the manifest";
    } else {
      it.path = dir / PathFromUtf8(it.host) / PathFromUtf8(name);
    }
    items.push_back(std::move(it));
  }
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < items.size(); i = next++) {
      Item& it = items[i];
      if (!it.status.empty()) continue;
      if (ctx.interrupted()) {
        it.status = "failed";
        it.error = "interrupted";
        continue;
      }
      std::error_code ec;
      std::filesystem::create_directories(it.path.parent_path(), ec);
      if (std::filesystem::exists(it.path, ec)) {
        absl::StatusOr<std::string> have = Sha256File(it.path);
        if (have.ok() && *have == it.sha256) {
          it.status = "already_present";
          continue;
        }
      }
      std::filesystem::path part = it.path;
      part += ".part";
      absl::StatusOr<std::string> got = s3.GetToFile(
          loc->bucket, it.key, part, absl::Now() + ctx.fan().per_host_timeout);
      if (!got.ok()) {
        it.status = absl::IsNotFound(got.status()) ? "missing" : "failed";
        it.error = std::string(got.status().message());
        std::filesystem::remove(part, ec);
      } else if (*got != it.sha256) {
        it.status = "digest_mismatch";
        it.error = absl::StrCat("sha256 ", *got, ", the manifest says ", it.sha256);
        std::filesystem::remove(part, ec);
      } else if (std::string why; !file_ops::FlushFile(part, &why) ||
                                  !file_ops::RenameDurably(part, it.path, &why)) {
        it.status = "failed";
        it.error = why;
      } else {
        it.status = "downloaded";
      }
    }
  };
  std::vector<std::thread> threads;
  const int n = std::max(1, std::min<int>(8, static_cast<int>(items.size())));
  for (int i = 1; i < n; ++i) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();

  // This folder's manifest: the store's, with each file that is now here
  // at its path (relative, as a run folder's manifest has them), so the
  // report links to it.
  for (const Item& it : items) {
    if (it.status == "downloaded" || it.status == "already_present") {
      m["files"][it.index]["file"] = PathToUtf8(
          std::filesystem::path(PathFromUtf8(it.host)) / it.path.filename());
    }
  }
  if (absl::Status w =
          WriteFileAtomically(dir / "manifest.json", m.dump(2) + "\n");
      !w.ok()) {
    ctx.err() << "warning: " << w.message() << "\n";
  } else if (absl::StatusOr<std::filesystem::path> report =
                 WriteHtmlReport(dir);
             !report.ok()) {
    ctx.err() << "warning: no " << kReportFileName << ": "
              << report.status().message() << "\n";
  }
  Table t({"HOST", "FILE", "SIZE", "STATUS", "PATH"});
  json j = json::array();
  int code = kExitOk;
  int ok = 0;
  for (const Item& it : items) {
    const bool good = it.status == "downloaded" || it.status == "already_present";
    ok += good;
    t.AddRow({it.host, it.key.substr(it.key.rfind('/') + 1), HumanBytes(it.size),
              it.status, good ? PathToUtf8(it.path) : ShortText(it.error, 100)});
    j.push_back({{"host", it.host},
                 {"object", loc->Url(it.key)},
                 {"file", PathToUtf8(it.path)},
                 {"status", it.status},
                 {"error", it.error},
                 {"sha256", it.sha256},
                 {"size_bytes", it.size}});
    if (it.status == "digest_mismatch") code = WorstExit(code, kExitDataProblem);
    if (!good && it.status != "digest_mismatch") code = WorstExit(code, kExitFailed);
  }
  if (ctx.json()) {
    ctx.out() << j.dump(2) << "\n";
  } else {
    ctx.out() << t.Render();
    ctx.err() << ok << "/" << items.size() << " file(s) verified in "
              << PathToUtf8(dir) << "\n";
  }
  return ctx.interrupted() ? kExitInterrupted : code;
}

}  // namespace labtrace::controller
