#!/usr/bin/env bash
# The README's first command: a real lab run on this machine, end to end.
# Installs what is missing, builds, starts a local labtrace-agent (perf
# backend, /bin/sh allowed for step commands) on a free loopback port, runs
# deploy/plans/quickstart.yaml (setup, two tests, cleanup: each step its own
# perf trace), collects every file with a manifest, and stops the agent.
#
# Usage: deploy/quickstart.sh [OUT_DIR]     (default ./runs)
# perf record -a needs root (or kernel.perf_event_paranoid <= 0).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-runs}" && cd "${1:-runs}" && pwd)"

bash "$root/deploy/install_deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j2 --target labtrace-agent labtrace

work="$(mktemp -d /tmp/labtrace-quickstart.XXXXXX)"
agent_pid=""
cleanup() {
  if [[ -n "$agent_pid" ]] && kill -0 "$agent_pid" 2>/dev/null; then
    kill -INT "$agent_pid"
    wait "$agent_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$root/build/agent/labtrace-agent" --listen 127.0.0.1:0 --rest-listen 127.0.0.1:0 --port-file "$work/port" \
  --data-dir "$work/agent-data" --exec-allow /bin/sh --log-level warn &
agent_pid=$!
for _ in $(seq 1 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "quickstart: the agent did not start" >&2; exit 1; }
cat >"$work/inventory.yaml" <<INV
hosts:
  - name: local
    address: 127.0.0.1:$(head -n1 "$work/port")
INV

echo "== agent on 127.0.0.1:$(head -n1 "$work/port")"
"$root/build/controller/labtrace" info --inventory "$work/inventory.yaml"
echo "== lab run"
status=0
"$root/build/controller/labtrace" run "$root/deploy/plans/quickstart.yaml" \
  --inventory "$work/inventory.yaml" --out "$out" || status=$?
exit $status
