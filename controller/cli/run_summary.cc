#include "controller/cli/run_summary.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/time_util.h"
#include "controller/report/table.h"

namespace labtrace::controller {

void PrintRunSummary(const RunResult& r, std::ostream& o) {
  o << "\nrun " << r.run_id << (r.interrupted ? " (interrupted)" : "") << ": "
    << HumanDuration(r.ended - r.started) << "\n";
  std::map<std::pair<std::string, std::string>,
           std::vector<const CollectedFile*>>
      files;
  for (const CollectedFile& f : r.files)
    files[{f.host, f.artifact.session_name()}].push_back(&f);
  Table t({"STEP", "PHASE", "HOST", "RESULT", "EXIT", "TIME", "FILES"});
  for (const StepResult& s : r.steps) {
    if (s.skipped) {
      t.AddRow({s.step.name, s.step.phase, "*", "skipped"});
      continue;
    }
    for (const StepHostResult& h : s.hosts) {
      std::vector<std::string> names;
      for (const CollectedFile* f : files[{h.host, s.step.name}]) {
        names.push_back(
            absl::StrCat(f->artifact.file_name(), " (",
                         HumanBytes(f->artifact.size_bytes()),
                         f->ok() ? "" : absl::StrCat(", ", f->status), ")"));
      }
      t.AddRow({s.step.name, s.step.phase, h.host, h.outcome,
                h.exit_code >= 0 ? std::to_string(h.exit_code) : "-",
                HumanDuration(h.duration),
                names.empty() ? "-" : absl::StrJoin(names, ", ")});
    }
  }
  o << t.Render();
  for (const std::string& w : r.warnings) o << "warning: " << w << "\n";
  if (!r.lost_hosts.empty())
    o << "lost hosts: " << absl::StrJoin(r.lost_hosts, ", ") << "\n";
  if (!r.deleted.empty()) {
    o << r.deleted.size()
      << " artifact(s) of passed steps deleted on the agents (keep: "
         "on-failure)\n";
  }
  std::uint64_t bytes = 0;
  int ok = 0;
  bool egress = false;
  std::vector<const CollectedFile*> missing;
  for (const CollectedFile& f : r.files) {
    egress |= !f.object_url.empty();
    if (f.ok()) {
      bytes += f.artifact.size_bytes();
      ++ok;
    } else if (!f.object_url.empty()) {
      missing.push_back(&f);
    }
  }
  o << ok << "/" << r.files.size() << " file(s) "
    << (egress ? "in the object store" : "collected") << ", "
    << HumanBytes(bytes) << "\n";
  if (!missing.empty()) {
    o << "missing in the object store:\n";
    for (const CollectedFile* f : missing) {
      o << "  " << f->object_url << ": " << f->error << "\n";
    }
    const std::string& url = missing.front()->object_url;
    // s3://bucket/prefix/<run_id>/<host>/<file> -> s3://bucket/prefix
    std::string base = url;
    for (int i = 0; i < 3 && base.rfind('/') != std::string::npos; ++i)
      base.resize(base.rfind('/'));
    o << "resume: labtrace fetch --run " << r.run_id << " --egress " << base
      << "\n";
  }
  if (egress && !r.files.empty()) {
    std::string base = r.files.front().object_url;
    for (int i = 0; i < 2 && base.rfind('/') != std::string::npos; ++i)
      base.resize(base.rfind('/'));
    o << "objects:   " << base << "/ (labtrace fetch --from " << base
      << " --out DIR)\n";
  }
  o << "artifacts: " << PathToUtf8(r.run_dir) << "\n";
  o << "manifest:  " << PathToUtf8(r.run_dir / "manifest.json") << "\n";
}

}  // namespace labtrace::controller
