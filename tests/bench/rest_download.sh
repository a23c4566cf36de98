#!/usr/bin/env bash
# rest_download.sh: the REST artifact download of labtrace-agent
# (GET /v1/artifacts/{id}/content, sendfile on plain TCP) against nginx
# serving the same file, over loopback, in the same run. A benchmark, not a
# test: it prints numbers and ratios, and fails only if something breaks
# (setup, a transfer, a status, a size/sha256/byte mismatch).
#
# Usage: tests/bench/rest_download.sh [RUNS]
#   RUNS         single-stream runs of each side, alternating (default 5; best
#                reported). Concurrent and Range rounds: ROUNDS each.
# Environment:
#   BUILD_DIR    build tree (default /work/main/build): needs
#                agent/labtrace-agent and tests/fake_wpr (both copied to the
#                temp dir first, so a rebuild during the run changes nothing)
#   SIZE_MB      artifact size in MiB (default 1024)
#   ROUNDS       rounds of scenarios 2 and 3 per side (default 3; best reported)
#   CONC         concurrent downloads in scenario 2 (default 8)
#   RANGES       Range requests in scenario 3 (default 1000), RANGE_KB each
#                (default 64), sequential on one keep-alive connection (curl -K)
#   NGINX        nginx binary (default: nginx from PATH; install it with
#                bash deploy/install_deps.sh --bench)
#   NGINX_WORKERS nginx worker processes (default 2 = the agent's 2 REST I/O
#                threads)
#
# What it does: writes SIZE_MB of random data to a temp dir, starts the agent
# (127.0.0.1 port 0 for gRPC and REST) with a wpr profile backed by fake_wpr,
# starts and stops a trace over REST so the file becomes an artifact, checks
# once that a full download hashes to the artifact's sha256 (= ETag) and that
# a Range answer is 206 with the right bytes, then starts a private nginx
# (sendfile on, access_log off) whose root is the agent's artifacts dir, so
# both serve the same file from the page cache. Untimed warm-up of each side,
# then: (1) one curl -o /dev/null, best of RUNS; (2) CONC curl processes at
# once, aggregate = CONC * size / wall time, best of ROUNDS; (3) RANGES
# RANGE_KB ranges at spread offsets, req/s = RANGES / wall time of the one
# curl, best of ROUNDS. MB = 10^6 B. Wall-time numbers on a shared machine:
# run it when the machine is quiet. All in one temp dir, removed at exit with
# every process the script started.
set -euo pipefail

RUNS=${1:-5}
BUILD_DIR=${BUILD_DIR:-/work/main/build}
SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-8}
RANGES=${RANGES:-1000}
RANGE_KB=${RANGE_KB:-64}
NGINX_WORKERS=${NGINX_WORKERS:-2}

die() { echo "rest_download: $*" >&2; exit 1; }

for v in RUNS SIZE_MB ROUNDS CONC RANGES RANGE_KB NGINX_WORKERS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
((RANGE_KB * 1024 <= SIZE_MB << 20)) || die "RANGE_KB is larger than the file"
for b in "$BUILD_DIR/agent/labtrace-agent" "$BUILD_DIR/tests/fake_wpr"; do
  [[ -x $b ]] || die "missing $b (build first: cmake --build $BUILD_DIR)"
done
for c in "${NGINX:-nginx}" curl sha256sum; do
  command -v "$c" >/dev/null || die "need $c (bash deploy/install_deps.sh --bench)"
done
NGINX=$(command -v "${NGINX:-nginx}")

TMP=$(mktemp -d /tmp/labtrace-bench-rest.XXXXXX)
AGENT_PID= NGINX_PID=
stop_pid() { # PID: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  [[ -n $NGINX_PID ]] && stop_pid "$NGINX_PID"
  [[ -n $AGENT_PID ]] && stop_pid "$AGENT_PID"
  if [[ $rc != 0 ]]; then
    for f in "$TMP/agent.log" "$TMP/nginx/error.log"; do
      [[ -s $f ]] && { echo "--- tail of $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
wait_for() { # DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.1 s
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do "$@" && return 0; sleep 0.1; done
  die "timed out after ${secs}s waiting for $what"
}
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
rest_port_known() { [[ $(sed -n 2p "$TMP/port" 2>/dev/null) =~ ^[1-9][0-9]*$ ]]; }

# --- the agent and the artifact -------------------------------------------
SIZE=$((SIZE_MB << 20))
(($(df -B1 --output=avail "$TMP" | tail -n1) > 2 * SIZE + (256 << 20))) ||
  die "need $((2 * SIZE_MB + 256)) MiB free in $TMP"
mkdir -p "$TMP/state" "$TMP/data" "$TMP/nginx"
cp "$BUILD_DIR/agent/labtrace-agent" "$BUILD_DIR/tests/fake_wpr" "$TMP/"
echo "writing ${SIZE_MB} MiB of random data" >&2
timeout 300 head -c "$SIZE" /dev/urandom >"$TMP/source.etl"
[[ $(stat -c %s "$TMP/source.etl") == "$SIZE" ]] || die "short source file"
cat >"$TMP/agent.yaml" <<EOF
data_dir: $TMP/data
log_level: warn
limits: {min_free_bytes: 64MiB}
wpr: {path: $TMP/fake_wpr, stop_timeout: 300s}
profiles: [{name: bench, backend: wpr, args: [GeneralProfile]}]
EOF
FAKE_WPR_STATE_DIR=$TMP/state FAKE_WPR_ETL_SOURCE=$TMP/source.etl \
  "$TMP/labtrace-agent" --config "$TMP/agent.yaml" --listen 127.0.0.1:0 \
  --rest-listen 127.0.0.1:0 --port-file "$TMP/port" >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
wait_for "the agent's port file" 15 rest_port_known
API=http://127.0.0.1:$(sed -n 2p "$TMP/port")
curl -sS --fail --max-time 10 -o /dev/null "$API/healthz" || die "agent /healthz failed"
curl -sS --fail-with-body --max-time 30 -H 'Content-Type: application/json' \
  -d '{"name": "bench_rest", "profile": "bench"}' "$API/v1/traces" >"$TMP/start.json" ||
  die "start failed: $(cat "$TMP/start.json")"
curl -sS --fail-with-body --max-time 330 -X POST "$API/v1/traces/bench_rest/stop" \
  >"$TMP/stop.json" || die "stop failed: $(cat "$TMP/stop.json")"
json() { sed -nE "s/^ *\"$1\": \"([^\"]*)\".*/\1/p" "$TMP/stop.json" | head -n1; }
ID=$(json artifact_id) SHA=$(json sha256)
[[ -n $ID && $SHA =~ ^[0-9a-f]{64}$ ]] || die "no artifact in: $(cat "$TMP/stop.json")"
FILE=$TMP/data/artifacts/$ID
[[ -f $FILE && $(stat -c %s "$FILE") == "$SIZE" ]] || die "artifact file $FILE missing or wrong size"
[[ $(timeout 300 sha256sum <"$TMP/source.etl" | cut -d' ' -f1) == "$SHA" ]] || die "artifact sha256 != source"
rm -f "$TMP/source.etl" # one copy in the page cache is enough
AGENT_URL=$API/v1/artifacts/$ID/content

# --- correctness, once ------------------------------------------------------
got=$(curl -sS --fail --max-time 600 -D "$TMP/hdr" "$AGENT_URL" | timeout 600 sha256sum | cut -d' ' -f1)
[[ $got == "$SHA" ]] || die "downloaded sha256 $got, want $SHA"
grep -qi "^etag: \"$SHA\"" "$TMP/hdr" || die "ETag is not the sha256: $(grep -i etag "$TMP/hdr")"
OFF=$((SIZE / 3 + 12345)) LEN=$((RANGE_KB * 1024))
code=$(curl -sS --max-time 30 -o "$TMP/range" -D "$TMP/hdr" -w '%{http_code}' \
  -r "$OFF-$((OFF + LEN - 1))" "$AGENT_URL")
[[ $code == 206 ]] || die "Range answered $code, want 206"
grep -qi "^content-range: bytes $OFF-$((OFF + LEN - 1))/$SIZE" "$TMP/hdr" || die "bad Content-Range"
timeout 30 cmp -s "$TMP/range" <(tail -c +"$((OFF + 1))" "$FILE" | head -c "$LEN") ||
  die "Range bytes differ from the file"
echo "verified: sha256 of the download = artifact sha256 = ETag; Range -> 206 with the right bytes" >&2

# --- nginx --------------------------------------------------------------------
start_nginx() {
  cat >"$TMP/nginx/nginx.conf" <<EOF
user $(id -un) $(id -gn);
daemon off;
worker_processes $NGINX_WORKERS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path $TMP/nginx/body; proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi; uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server { listen 127.0.0.1:$1; root $TMP/data/artifacts; }
}
EOF
  "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >>"$TMP/nginx/error.log" 2>&1 &
  NGINX_PID=$!
}
for ((try = 0; try < 10; try++)); do
  port=$((20000 + RANDOM % 40000))
  port_is_free "$port" || continue
  start_nginx "$port"
  for ((i = 0; i < 50; i++)); do
    kill -0 "$NGINX_PID" 2>/dev/null || break
    port_is_free "$port" || { NGINX_URL=http://127.0.0.1:$port/$ID; break 2; }
    sleep 0.1
  done
  stop_pid "$NGINX_PID"
  NGINX_PID=
done
[[ -n ${NGINX_URL:-} ]] || die "nginx did not start (see its error log)"

# --- measurements -----------------------------------------------------------
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.1f", b / t / 1e6 }'; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.6f", b - a }'; }
best() { printf '%s\n' "$@" | sort -g | tail -n1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
run_single() { # URL -> MB/s
  local out bytes secs
  out=$(curl -sS --fail --max-time 600 -o /dev/null -w '%{size_download} %{time_total}' "$1") ||
    die "curl $1 failed"
  read -r bytes secs <<<"$out"
  [[ $bytes == "$SIZE" ]] || die "curl got $bytes bytes from $1, want $SIZE"
  mbps "$bytes" "$secs"
}
run_conc() { # URL -> aggregate MB/s of CONC downloads at once
  local t0 i pids=()
  t0=$(date +%s.%N)
  for ((i = 0; i < CONC; i++)); do
    curl -sS --fail --max-time 600 -o /dev/null -w '%{size_download}' "$1" >"$TMP/conc.$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || die "a concurrent curl of $1 failed"; done
  local secs; secs=$(since "$t0")
  for ((i = 0; i < CONC; i++)); do
    [[ $(<"$TMP/conc.$i") == "$SIZE" ]] || die "concurrent curl $i: $(<"$TMP/conc.$i") bytes"
  done
  mbps $((CONC * SIZE)) "$secs"
}
run_ranges() { # URL -> req/s of RANGES sequential Range requests on one connection
  local t0 secs i off blocks=$((SIZE / LEN)) want
  : >"$TMP/ranges.cfg"
  for ((i = 0; i < RANGES; i++)); do
    off=$(((i * 7919 % blocks) * LEN))
    ((i > 0)) && echo next >>"$TMP/ranges.cfg"
    printf 'url = "%s"\nrange = "%d-%d"\noutput = "/dev/null"\nwrite-out = "%%{http_code} %%{size_download} %%{num_connects}\\n"\n' \
      "$1" "$off" $((off + LEN - 1)) >>"$TMP/ranges.cfg"
  done
  t0=$(date +%s.%N)
  timeout 600 curl -sS --max-time 60 -K "$TMP/ranges.cfg" >"$TMP/ranges.out" || die "range curl of $1 failed"
  secs=$(since "$t0")
  want=$(awk -v n="$LEN" '$1 == 206 && $2 == n { ok++ } { c += $3 } END { print ok + 0, c + 0 }' "$TMP/ranges.out")
  [[ ${want% *} == "$RANGES" ]] || die "$1: only ${want% *} of $RANGES ranges were 206 with $LEN bytes"
  echo "$(awk -v n="$RANGES" -v t="$secs" 'BEGIN { printf "%.0f", n / t }') ${want#* }"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "warm-up (untimed): one download from each" >&2
run_single "$AGENT_URL" >/dev/null
run_single "$NGINX_URL" >/dev/null
A1=() N1=() A2=() N2=() A3=() N3=() AC=() NC=()
for ((r = 1; r <= RUNS; r++)); do
  A1+=("$(run_single "$AGENT_URL")")
  N1+=("$(run_single "$NGINX_URL")")
  echo "single run $r: agent ${A1[-1]}, nginx ${N1[-1]} MB/s" >&2
done
for ((r = 1; r <= ROUNDS; r++)); do
  A2+=("$(run_conc "$AGENT_URL")")
  N2+=("$(run_conc "$NGINX_URL")")
  echo "$CONC concurrent, round $r: agent ${A2[-1]}, nginx ${N2[-1]} MB/s" >&2
done
for ((r = 1; r <= ROUNDS; r++)); do
  out=$(run_ranges "$AGENT_URL")
  read -r a c <<<"$out"; A3+=("$a") AC+=("$c")
  out=$(run_ranges "$NGINX_URL")
  read -r a c <<<"$out"; N3+=("$a") NC+=("$c")
  echo "ranges, round $r: agent ${A3[-1]} req/s (${AC[-1]} connections), nginx ${N3[-1]} req/s (${NC[-1]} connections)" >&2
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

b1a=$(best "${A1[@]}") b1n=$(best "${N1[@]}") b2a=$(best "${A2[@]}") b2n=$(best "${N2[@]}")
b3a=$(best "${A3[@]}") b3n=$(best "${N3[@]}")
r3mb() { awk -v q="$1" -v n="$LEN" 'BEGIN { printf "%.1f", q * n / 1e6 }'; }
row() { printf '%-40s %10s %10s %7s  %s\n' "$@"; }
echo
echo "REST artifact download: ${SIZE_MB} MiB file over loopback, curl, MB = 10^6 B, best of the runs"
echo "host: $(nproc) CPUs, $(uname -sr), loadavg $LOAD0 -> $LOAD1; nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') ($NGINX_WORKERS workers, sendfile)"
row scenario agent nginx ratio "runs agent | nginx"
row "single stream MB/s (best of $RUNS)" "$b1a" "$b1n" "$(ratio "$b1a" "$b1n")" "${A1[*]} | ${N1[*]}"
row "$CONC concurrent, aggregate MB/s (of $ROUNDS)" "$b2a" "$b2n" "$(ratio "$b2a" "$b2n")" "${A2[*]} | ${N2[*]}"
row "$RANGES x ${RANGE_KB} KiB Range, req/s (of $ROUNDS)" "$b3a" "$b3n" "$(ratio "$b3a" "$b3n")" "${A3[*]} | ${N3[*]}"
row "  the same, MB/s" "$(r3mb "$b3a")" "$(r3mb "$b3n")" "$(ratio "$b3a" "$b3n")" \
  "connections used: ${AC[*]} | ${NC[*]}"
echo "ratio (agent/nginx, $CONC concurrent): $(ratio "$b2a" "$b2n")"
echo "ratio (agent/nginx, Range req/s): $(ratio "$b3a" "$b3n")"
echo "ratio (agent/nginx, single stream): $(ratio "$b1a" "$b1n")"
