#!/usr/bin/env bash
# fleet_scale.sh: how the controller's cost grows with the fleet. For N = 100,
# 1,000 and 10,000 simulated agents (tests/bench/fleet_sim: one process, N
# loopback ports, the real TraceAgent contract with a cheap fake backend; 1 %
# of the hosts dead (connection refused) and 1 % hung (TCP accepted, HTTP/2
# never answered)) it times `labtrace info`, `status`, `start`, `stop-all`
# and a three-step `run` (collect included), and reports wall time and the
# controller's peak RSS, and checks that every dead host is reported
# unreachable, every hung one timed_out, and nothing else fails.
# A benchmark, not a test; the simulator shares this machine's cores.
#
# Usage: tests/bench/fleet_scale.sh [N ...]      (default: 100 1000 10000)
# Environment: BUILD_DIR (default: build/ of this checkout).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
sim="$build/tests/bench/fleet_sim"
labtrace="$build/controller/labtrace"
for b in "$sim" "$labtrace"; do
  [[ -x "$b" ]] || { echo "fleet_scale: $b is missing; build first" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "fleet_scale: needs GNU time (apt-get install time)" >&2; exit 2; }
sizes=("$@")
((${#sizes[@]})) || sizes=(100 1000 10000)

work="$(mktemp -d)"
sim_pid=""
cleanup() {
  [[ -n "$sim_pid" ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/plan.yaml" <<'EOF'
run: fleet
defaults: {profile: cpu, run_on: controller, timeout: 2m}
setup:   [{name: prepare, command: ["true"]}]
tests:   [{name: step_test, command: ["true"]}]
cleanup: [{name: tidy, command: ["true"]}]
EOF

# timed NAME EXPECTED_EXIT ARGS...: wall seconds and peak RSS of one command,
# and the outcome counts of its --json output.
timed() {
  local name="$1" want="$2"
  shift 2
  local code=0
  /usr/bin/time -f "%e %M" -o "$work/time" timeout 600 "$labtrace" "$@" \
    --inventory "$work/inv.yaml" --json >"$work/out.json" 2>"$work/err" || code=$?
  read -r secs rss < <(tail -n 1 "$work/time")  # After "Command exited ...".
  local check
  check="$(python3 - "$work/out.json" "$work/inv.yaml" <<'PY'
import collections, json, re, sys
state = dict(re.findall(r"name: (sim\d+), .*state: (\w+)", open(sys.argv[2]).read()))
try:
    data = json.load(open(sys.argv[1]))
except Exception as e:
    print("no JSON output (%s)" % e)
    sys.exit()
rows = []
def walk(x):
    if isinstance(x, dict):
        if "host" in x and "outcome" in x:
            rows.append(x)
        for v in x.values():
            walk(v)
    elif isinstance(x, list):
        for v in x:
            walk(v)
walk(data)
want = {"live": "ok", "dead": "unreachable", "hung": "timed_out"}
wrong = [r for r in rows if r["host"] in state and r["outcome"] != want[state[r["host"]]]]
counts = " ".join("%s=%d" % kv for kv in sorted(collections.Counter(r["outcome"] for r in rows).items()))
print(counts + ("; WRONG: %d, e.g. %s" % (len(wrong), wrong[0]) if wrong else "; all as expected"))
PY
)"
  printf '%-7s %-10s %8.2f s %8d MB  exit %d (want %d)  %s\n' "$n" "$name" "$secs" \
    $((rss / 1024)) "$code" "$want" "$check"
}

printf '%-7s %-10s %10s %11s  %s\n' "hosts" "command" "wall" "peak RSS" "outcomes"
for n in "${sizes[@]}"; do
  rm -f "$work/ready"
  "$sim" --agents "$n" --inventory "$work/inv.yaml" --ready "$work/ready" \
    2>"$work/sim.log" &
  sim_pid=$!
  for _ in $(seq 1 600); do [[ -f "$work/ready" ]] && break; sleep 0.1; done
  [[ -f "$work/ready" ]] || { cat "$work/sim.log" >&2; exit 1; }
  # Exit 3: some hosts unreachable or timed out (the dead and hung ones).
  timed info 3 info
  timed status 3 status
  timed start 3 start bench --profile cpu --run-id r1
  timed stop-all 3 stop-all
  timed run 3 run "$work/plan.yaml" --out "$work/runs" --lease 0
  kill "$sim_pid"
  wait "$sim_pid" 2>/dev/null || true
  sim_pid=""
done
echo "(1 % dead and 1 % hung in every fleet; connect timeout 3 s)"
