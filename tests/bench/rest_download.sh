#!/usr/bin/env bash
# rest_download.sh: REST artifact download of labtrace-agent
# (GET /v1/artifacts/{id}/content) against nginx serving the same file over
# loopback, in the same run. A benchmark, not a test: it prints numbers and
# ratios, and fails only if something breaks (setup, a transfer, a status,
# a size/sha256/byte mismatch, a request stuck over 10 s).
#
# Usage: tests/bench/rest_download.sh [RUNS]   (single-stream runs, default 5)
# Environment: BUILD_DIR (default /work/main/build; agent/labtrace-agent and
#   tests/fake_wpr are copied to the temp dir at start), SIZE_MB (file size,
#   default 1024), ROUNDS (rounds of scenarios 2 and 3, default 3), CONC
#   (default 8), RANGES (default 1000), RANGE_KB (default 64), NGINX (default
#   nginx from PATH; bash deploy/install_deps.sh --bench installs it),
#   NGINX_WORKERS (default 2, as the agent's 2 REST I/O threads).
#
# Random bytes become an artifact through fake_wpr (a trace started and
# stopped over REST). Checked once: a download hashes to the artifact's
# sha256 (= ETag); a Range answer is 206 with the right bytes. nginx
# (sendfile on, access_log off) serves the agent's artifacts dir: the same
# file, from the page cache. After one untimed download each, alternating:
# (1) curl -o /dev/null, best of RUNS; (2) CONC curls at once, CONC * size /
# wall time, best of ROUNDS; (3) RANGES spread Range requests on one
# keep-alive connection (curl -K), RANGES / wall time, best of ROUNDS.
# MB = 10^6 B. The agent's open fds are shown before and after (leak check).
# Run it on a quiet machine. Everything lives in one temp dir, removed at
# exit with every process the script started.
set -euo pipefail

RUNS=${1:-5}
BUILD_DIR=${BUILD_DIR:-/work/main/build}
SIZE_MB=${SIZE_MB:-1024} ROUNDS=${ROUNDS:-3} CONC=${CONC:-8}
RANGES=${RANGES:-1000} RANGE_KB=${RANGE_KB:-64} NGINX_WORKERS=${NGINX_WORKERS:-2}

die() { echo "rest_download: $*" >&2; exit 1; }

for v in RUNS SIZE_MB ROUNDS CONC RANGES RANGE_KB NGINX_WORKERS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
((RANGE_KB <= SIZE_MB * 1024)) || die "RANGE_KB is larger than the file"
for b in "$BUILD_DIR/agent/labtrace-agent" "$BUILD_DIR/tests/fake_wpr"; do
  [[ -x $b ]] || die "missing $b (build first: cmake --build $BUILD_DIR)"
done
for c in "${NGINX:-nginx}" curl sha256sum; do
  command -v "$c" >/dev/null || die "need $c (bash deploy/install_deps.sh --bench)"
done
NGINX=$(command -v "${NGINX:-nginx}")

TMP=$(mktemp -d /tmp/labtrace-bench-rest.XXXXXX)
AGENT_PID='' NGINX_PID=''
stop_pid() { # PID: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? f
  [[ -n $NGINX_PID ]] && stop_pid "$NGINX_PID"
  [[ -n $AGENT_PID ]] && stop_pid "$AGENT_PID"
  for f in "$TMP/agent.log" "$TMP/nginx/error.log"; do
    [[ $rc != 0 && -s $f ]] && { echo "--- tail of $f" >&2; tail -n 20 "$f" >&2; }
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
rest_port_known() { [[ $(sed -n 2p "$TMP/port" 2>/dev/null) =~ ^[1-9][0-9]*$ ]]; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# --- the agent and the artifact -------------------------------------------
SIZE=$((SIZE_MB << 20)) LEN=$((RANGE_KB << 10))
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
for ((i = 0; i < 150; i++)); do rest_port_known && break; sleep 0.1; done
rest_port_known || die "no REST port in the agent's port file after 15 s"
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
OFF=$((SIZE / 3 + 12345))
code=$(curl -sS --max-time 30 -o "$TMP/range" -D "$TMP/hdr" -w '%{http_code}' \
  -r "$OFF-$((OFF + LEN - 1))" "$AGENT_URL")
[[ $code == 206 ]] || die "Range answered $code, want 206"
grep -qi "^content-range: bytes $OFF-$((OFF + LEN - 1))/$SIZE" "$TMP/hdr" || die "bad Content-Range"
timeout 30 cmp -s "$TMP/range" <(tail -c +"$((OFF + 1))" "$FILE" | head -c "$LEN") ||
  die "Range bytes differ from the file"
echo "verified: download sha256 = artifact sha256 = ETag; Range -> 206, right bytes" >&2

# --- nginx --------------------------------------------------------------------
start_nginx() {
  cat >"$TMP/nginx/nginx.conf" <<EOF
user $(id -un) $(id -gn); daemon off; worker_processes $NGINX_WORKERS;
pid $TMP/nginx/nginx.pid; error_log $TMP/nginx/error.log warn;
events { worker_connections 256; }
http {
  # tcp_nopush off: with it, small keep-alive answers stall 40 ms (delayed ACK).
  access_log off; sendfile on; tcp_nopush off; keepalive_requests 100000;
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
  stop_pid "$NGINX_PID"; NGINX_PID=''
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
  local t0 i secs pids=()
  t0=$(date +%s.%N)
  for ((i = 0; i < CONC; i++)); do
    curl -sS --fail --max-time 600 -o /dev/null -w '%{size_download}' "$1" >"$TMP/conc.$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || die "a concurrent curl of $1 failed"; done
  secs=$(since "$t0")
  for ((i = 0; i < CONC; i++)); do
    [[ $(<"$TMP/conc.$i") == "$SIZE" ]] || die "concurrent curl $i: $(<"$TMP/conc.$i") bytes"
  done
  mbps $((CONC * SIZE)) "$secs"
}
run_ranges() { # URL -> "req/s connections" for RANGES sequential ranges
  local t0 secs i off blocks=$((SIZE / LEN)) ok
  for ((i = 0; i < RANGES; i++)); do
    off=$(((i * 7919 % blocks) * LEN))
    ((i > 0)) && echo next
    printf 'url = "%s"\nrange = "%d-%d"\noutput = "/dev/null"\nmax-time = 10\n' "$1" "$off" $((off + LEN - 1))
    printf 'write-out = "%%{http_code} %%{size_download} %%{num_connects} %%{time_total}\\n"\n'
  done >"$TMP/ranges.cfg"
  t0=$(date +%s.%N)
  timeout 900 curl -sS -K "$TMP/ranges.cfg" >"$TMP/ranges.out" 2>"$TMP/ranges.err" || true
  secs=$(since "$t0")
  ok=$(awk -v n="$LEN" '$1 == 206 && $2 == n' "$TMP/ranges.out" | wc -l)
  if ((ok != RANGES)); then
    awk -v n="$LEN" '!($1 == 206 && $2 == n) { print "  request " NR ": status " $1 ", " $2 " bytes, " $4 " s" }' \
      "$TMP/ranges.out" | head -n 5 >&2
    head -n 3 "$TMP/ranges.err" >&2
    die "$1: $ok of $RANGES Range requests were 206 with $LEN bytes"
  fi
  echo "$(awk -v n="$RANGES" -v t="$secs" 'BEGIN { printf "%.0f", n / t }')" \
    "$(awk '{ c += $3 } END { print c }' "$TMP/ranges.out")"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg) FD0=$(fds "$AGENT_PID")
echo "warm-up (untimed): one download from each" >&2
run_single "$AGENT_URL" >/dev/null; run_single "$NGINX_URL" >/dev/null
A1=() N1=() A2=() N2=() A3=() N3=() AC=() NC=()
for ((r = 1; r <= RUNS; r++)); do
  A1+=("$(run_single "$AGENT_URL")"); N1+=("$(run_single "$NGINX_URL")")
  echo "single run $r: agent ${A1[-1]}, nginx ${N1[-1]} MB/s" >&2
done
for ((r = 1; r <= ROUNDS; r++)); do
  A2+=("$(run_conc "$AGENT_URL")"); N2+=("$(run_conc "$NGINX_URL")")
  echo "$CONC concurrent, round $r: agent ${A2[-1]}, nginx ${N2[-1]} MB/s" >&2
done
for ((r = 1; r <= ROUNDS; r++)); do
  out=$(run_ranges "$AGENT_URL"); read -r a c <<<"$out"; A3+=("$a") AC+=("$c")
  out=$(run_ranges "$NGINX_URL"); read -r a c <<<"$out"; N3+=("$a") NC+=("$c")
  echo "ranges, round $r: agent ${A3[-1]} req/s, nginx ${N3[-1]} req/s" >&2
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg) FD1=$(fds "$AGENT_PID")

b1a=$(best "${A1[@]}") b1n=$(best "${N1[@]}") b2a=$(best "${A2[@]}") b2n=$(best "${N2[@]}")
b3a=$(best "${A3[@]}") b3n=$(best "${N3[@]}")
r3mb() { awk -v q="$1" -v n="$LEN" 'BEGIN { printf "%.1f", q * n / 1e6 }'; }
row() { printf '%-38s %9s %9s %6s  %s\n' "$@"; }
echo
echo "REST artifact download vs nginx: ${SIZE_MB} MiB file, loopback, curl; best of the runs; MB = 10^6 B"
echo "host: $(nproc) CPUs, $(uname -sr), loadavg $LOAD0 -> $LOAD1; nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') ($NGINX_WORKERS workers, sendfile)"
row scenario agent nginx ratio "runs: agent | nginx"
row "single stream, MB/s (best of $RUNS)" "$b1a" "$b1n" "$(ratio "$b1a" "$b1n")" "${A1[*]} | ${N1[*]}"
row "$CONC concurrent, aggregate MB/s" "$b2a" "$b2n" "$(ratio "$b2a" "$b2n")" "${A2[*]} | ${N2[*]}"
row "$RANGES x $RANGE_KB KiB Range, req/s" "$b3a" "$b3n" "$(ratio "$b3a" "$b3n")" "${A3[*]} | ${N3[*]}"
row "  the same, MB/s" "$(r3mb "$b3a")" "$(r3mb "$b3n")" "$(ratio "$b3a" "$b3n")" \
  "connections per round: ${AC[*]} | ${NC[*]}"
echo "agent open fds: $FD0 before the measurements, $FD1 after (all connections closed)"
echo "ratio (agent/nginx, $CONC concurrent): $(ratio "$b2a" "$b2n")"
echo "ratio (agent/nginx, Range req/s): $(ratio "$b3a" "$b3n")"
echo "ratio (agent/nginx, single stream): $(ratio "$b1a" "$b1n")"
