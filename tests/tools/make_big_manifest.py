#!/usr/bin/env python3
"""Writes a synthetic run folder manifest (schema_version 1) for a large
fleet, to measure and test the HTML report at scale:

    make_big_manifest.py OUT_DIR [--hosts 1000] [--steps 50] [--seed 1]

OUT_DIR/manifest.json gets HOSTS hosts x STEPS steps (2 setup, 2 cleanup,
the rest tests), a trace file (.etl) and a step log per host and step, and
a realistic sprinkling of trouble: failed steps with exit codes and
errors, timeouts, two hosts lost half-way (unreachable, then skipped),
traces with lost events (and the warnings the runner writes for them), and
one host name and one error that try to inject markup. The trace files are
not created; only the manifest is. Deterministic for a given seed.
"""

import argparse
import datetime
import hashlib
import json
import os
import random


def rfc3339(t, micros=False):
    s = t.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (s if micros else s[:-3]) + "Z"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    hosts = ["lab-vm-%04d" % i for i in range(a.hosts)]
    if a.hosts > 3:
        hosts[3] = "vm-<script>alert('host')</script>"
    lost = set(hosts[5:7]) if a.hosts > 7 else set()
    t0 = datetime.datetime(2026, 11, 22, 1, 0, 0)
    names = []
    for i in range(a.steps):
        if i < 2:
            names.append(("setup_%d" % i, "setup"))
        elif i >= a.steps - 2:
            names.append(("cleanup_%d" % (i - a.steps + 2), "cleanup"))
        else:
            names.append(("test_%03d" % (i - 2), "test"))
    steps, files, warnings = [], [], []
    now = t0 + datetime.timedelta(seconds=2)
    lost_at = a.steps // 2
    for si, (name, phase) in enumerate(names):
        length = rnd.uniform(5, 90)
        start, end = now, now + datetime.timedelta(seconds=length + 1)
        hs, passed = [], True
        for h in hosts:
            gone = h in lost and si >= lost_at
            if gone and si > lost_at:
                hs.append({"host": h, "outcome": "skipped", "exit_code": -1,
                           "command_timed_out": False, "duration_s": 0,
                           "error": "", "trace_error": "",
                           "trace_started_at": None, "artifacts": []})
                continue
            ts = start + datetime.timedelta(milliseconds=rnd.uniform(0, 400))
            dur = length * rnd.uniform(0.6, 1.0)
            r = rnd.random()
            outcome, code, err, timed_out = "ok", 0, "", False
            if gone:
                outcome, code, err = "unreachable", -1, (
                    "connection refused (%s:7415)" % h)
                dur = 3.0
            elif phase == "test" and r < 0.01:
                code = rnd.choice([1, 2, 7, 139])
                outcome, err = "failed", (
                    "command exited with code %d; stderr tail:\n"
                    "FAIL: case_%d: expected 200, got 503\n" % (code, si))
            elif phase == "test" and r < 0.013:
                outcome, code, timed_out = "timed_out", -1, True
                err = "command timed out after 30m"
            if outcome != "ok":
                passed = False
            if si == 3 and h == hosts[1]:
                outcome, code, passed = "failed", 1, False
                err = "</script><img src=x onerror=alert(1)> & \u2028 done"
            arts = []
            stamp = ts.strftime("%Y%m%d_%H%M%S")
            if not gone:
                for ext, backend in ((".etl", "wpr"), (".log", "exec")):
                    aid = "%s_%s%s" % (name, stamp, ext)
                    arts.append(aid)
                    size = (rnd.randint(2, 400) << 20) if backend == "wpr" \
                        else rnd.randint(100, 20000)
                    lost_ev = rnd.choice([41, 1200, 7]) \
                        if backend == "wpr" and rnd.random() < 0.02 else 0
                    problems = ["%d events lost" % lost_ev] if lost_ev else []
                    summary = None
                    if backend == "wpr":
                        summary = {"format": "etl", "file_size": size,
                                   "events_lost": lost_ev, "buffers_lost": 0,
                                   "record_count": size // 180,
                                   "problems": problems}
                    files.append({
                        "host": h, "step": name, "phase": phase,
                        "artifact_id": aid, "file": "%s/%s" % (h, aid),
                        "backend": backend, "size_bytes": size,
                        "sha256": hashlib.sha256(
                            (h + aid).encode()).hexdigest(),
                        "status": "collected", "error": "", "object": None,
                        "auto_stopped": False, "summary": summary})
                    if lost_ev:
                        warnings.append(
                            "%s on %s: %d events lost; raise the buffer count"
                            " or size in the profile" % (name, h, lost_ev))
            hs.append({"host": h, "outcome": outcome, "exit_code": code,
                       "command_timed_out": timed_out,
                       "duration_s": round(dur, 3), "error": err,
                       "trace_error": "", "artifacts": arts,
                       "trace_started_at": rfc3339(ts, micros=True)})
        steps.append({"name": name, "phase": phase, "profile": "general",
                      "command": ["C:\\lab\\%s.cmd" % name],
                      "run_on": "agent", "passed": passed, "skipped": False,
                      "started_at": rfc3339(start), "ended_at": rfc3339(end),
                      "sync_instant": None, "start_spread_ms": 0,
                      "hosts": hs})
        now = end + datetime.timedelta(seconds=0.5)
    m = {"schema_version": 1, "labtrace_version": "0.0.0-synthetic",
         "run_id": "big-%dx%d" % (a.hosts, a.steps),
         "command_line": ["labtrace", "run", "plans/big.yaml", "--out",
                          "runs"],
         "plan": {"run": "big", "source": "plans/big.yaml",
                  "keep": "always"},
         "started_at": rfc3339(t0), "ended_at": rfc3339(now),
         "duration_s": (now - t0).total_seconds(), "interrupted": False,
         "exit_code": 4, "lost_hosts": sorted(lost),
         "lost_events": bool(warnings), "warnings": warnings,
         "sync_start": False, "clock_offsets": {}, "steps": steps,
         "files": files, "deleted_on_agents": []}
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "manifest.json"), "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
