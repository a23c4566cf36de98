#!/usr/bin/env bash
# Benchmark: `labtrace stop-all` across N local agents (default 100), each
# with 2 sessions running (WPR backend on tests/tools/fake_wpr, writing a
# real ETL file at stop). Measures the wall time of the parallel stop-all and
# of the same calls made one host at a time (--parallel 1), in the same run,
# and prints both and their ratio. Target: under 2 s for 100 agents.
#
# Usage: tests/bench/stop_all.sh [N_AGENTS] [ROUNDS]
#   BUILD_DIR (default: build/ of this checkout) must hold a built tree.
#   STOP_DELAY_MS=N makes each fake `wpr -stop` take N ms (real WPR stops
#   merge and take seconds); default 0, the pure RPC + process cost.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
n="${1:-100}"
rounds="${2:-3}"
agent_bin="$build/agent/labtrace-agent"
cli="$build/controller/labtrace"
fake_wpr="$build/tests/fake_wpr"
etl="$root/../shared/testdata/etl/s4_WindowsUpdate.20251008.140245.443.8.etl"
for f in "$agent_bin" "$cli" "$fake_wpr" "$etl"; do
  [[ -e "$f" ]] || { echo "missing $f (build first: cmake --build build -j2)" >&2; exit 2; }
done

work="$(mktemp -d /tmp/labtrace-bench-stopall.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

echo "starting $n agents..."
echo "hosts:" >"$work/inventory.yaml"
for i in $(seq 1 "$n"); do
  d="$work/a$i"
  mkdir -p "$d/wpr"
  cat >"$d/agent.yaml" <<CFG
wpr: {path: $fake_wpr}
profiles: [{name: general, backend: wpr, args: [GeneralProfile]}]
limits: {max_threads: 8}
CFG
  FAKE_WPR_STATE_DIR="$d/wpr" FAKE_WPR_ETL_SOURCE="$etl" \
    FAKE_WPR_STOP_DELAY_MS="${STOP_DELAY_MS:-0}" \
    "$agent_bin" --config "$d/agent.yaml" --listen 127.0.0.1:0 --rest-listen off --port-file "$d/port" \
    --data-dir "$d/data" --log-level error 2>>"$work/agents.log" &
  pids+=($!)
done
for i in $(seq 1 "$n"); do
  for _ in $(seq 1 200); do [[ -s "$work/a$i/port" ]] && break; sleep 0.05; done
  [[ -s "$work/a$i/port" ]] || { echo "agent $i did not start" >&2; exit 1; }
  echo "  - {name: h$i, address: \"127.0.0.1:$(head -n1 "$work/a$i/port")\"}" >>"$work/inventory.yaml"
done

start_sessions() {
  for s in one two; do
    "$cli" start "bench_$s" --profile general --inventory "$work/inventory.yaml" >/dev/null 2>&1 ||
      { echo "start failed" >&2; exit 1; }
  done
}

# Wall time of one stop-all in seconds; checks that every agent answered ok
# and that 2*n sessions were stopped.
timed_stop_all() {
  local t0 t1 stopped
  t0=$(date +%s.%N)
  "$cli" stop-all --json --inventory "$work/inventory.yaml" "$@" >"$work/out.json" 2>/dev/null
  t1=$(date +%s.%N)
  stopped=$(grep -c '"TRACE_STATE_COMPLETED"' "$work/out.json" || true)
  [[ "$stopped" == "$((2 * n))" ]] || { echo "only $stopped sessions stopped" >&2; exit 1; }
  echo "$t1 - $t0" | bc -l
}

par=()
seq_t=()
for r in $(seq 1 "$rounds"); do
  start_sessions
  par+=("$(timed_stop_all)")
  start_sessions
  seq_t+=("$(timed_stop_all --parallel 1)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(median "${par[@]}")
s=$(median "${seq_t[@]}")
printf '\nstop-all over %d agents x 2 sessions (%d rounds, median; wpr -stop delay %s ms)\n' \
  "$n" "$rounds" "${STOP_DELAY_MS:-0}"
printf '  parallel (--parallel 32):  %6.3f s   [%s]\n' "$p" "${par[*]}"
printf '  sequential (--parallel 1): %6.3f s   [%s]\n' "$s" "${seq_t[*]}"
printf '  target: parallel < 2 s for 100 agents\n'
printf 'RATIO parallel/sequential = %.3f (speedup %.1fx)\n' "$(echo "$p / $s" | bc -l)" "$(echo "$s / $p" | bc -l)"
