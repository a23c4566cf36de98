#!/usr/bin/env bash
# fetch_throughput.sh: FetchArtifact throughput of labtrace-agent over
# loopback, against nginx + curl serving the same file in the same run.
# A benchmark, not a test: it prints numbers and a ratio, and fails only if
# something breaks (setup, a transfer, a size/sha256 mismatch).
#
# Usage: tests/bench/fetch_throughput.sh [RUNS]
#   RUNS         timed runs of each side, alternating (default 3; median
#                reported). One untimed warm-up run of each side comes first.
# Environment:
#   BUILD_DIR    build tree (default /work/main/build): needs
#                agent/labtrace-agent, tests/fake_wpr, tests/bench/fetch_client
#   FETCH_CLIENT fetch_client binary (default $BUILD_DIR/tests/bench/fetch_client)
#   SIZE_MB      artifact size in MiB (default 1024)
#   CHUNK        FetchArtifact chunk_size in bytes (default 0 = agent default,
#                1 MiB)
#   NGINX        nginx binary (default: nginx from PATH; installed with
#                apt-get install nginx-light curl when missing and root)
#
# What it does: writes SIZE_MB of random data to a temp dir, starts the agent
# on 127.0.0.1 port 0 with a wpr profile backed by tests/fake_wpr (whose
# FAKE_WPR_ETL_SOURCE is that file), starts and stops a trace so the file
# becomes an artifact (the stop copies it and computes its sha256), then
# downloads it with fetch_client (verifying size and sha256) and with curl
# from a private nginx (sendfile on, 1 worker) serving the artifacts dir.
# Reported: median MB/s per side. The final line compares like with like:
# bytes to /dev/null, size checked, no hashing. The sha256-checked fetch is
# reported too, with the hash-only speed that bounds it (a client cost).
# Wall-time numbers: on a shared machine, run it when the machine is quiet.
# Everything lives in one temp dir, removed at exit with every process the
# script started.
set -euo pipefail

RUNS=${1:-3}
BUILD_DIR=${BUILD_DIR:-/work/main/build}
FETCH_CLIENT=${FETCH_CLIENT:-$BUILD_DIR/tests/bench/fetch_client}
SIZE_MB=${SIZE_MB:-1024}
CHUNK=${CHUNK:-0}
AGENT=$BUILD_DIR/agent/labtrace-agent
FAKE_WPR=$BUILD_DIR/tests/fake_wpr
TARGET=0.8

die() { echo "fetch_throughput: $*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer"
for b in "$AGENT" "$FAKE_WPR" "$FETCH_CLIENT"; do
  [[ -x $b ]] || die "missing $b (build first: cmake --build $BUILD_DIR)"
done

if ! command -v "${NGINX:-nginx}" >/dev/null || ! command -v curl >/dev/null; then
  [[ $(id -u) == 0 ]] || die "need nginx and curl (apt-get install nginx-light curl)"
  echo "installing nginx-light curl" >&2
  timeout 600 apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
    nginx-light curl >&2
fi
NGINX=$(command -v "${NGINX:-nginx}")

TMP=$(mktemp -d /tmp/labtrace-bench-fetch.XXXXXX)
AGENT_PID=
NGINX_PID=

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
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

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.1 s.
wait_for() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  die "timed out after ${secs}s waiting for $what"
}

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- the artifact ----------------------------------------------------------
echo "writing ${SIZE_MB} MiB of random data" >&2
mkdir -p "$TMP/state" "$TMP/data" "$TMP/nginx"
timeout 300 head -c "$((SIZE_MB << 20))" /dev/urandom >"$TMP/source.etl"
SIZE=$(stat -c %s "$TMP/source.etl")
[[ $SIZE == $((SIZE_MB << 20)) ]] || die "short source file ($SIZE bytes)"

cat >"$TMP/agent.yaml" <<EOF
listen: 127.0.0.1:0
data_dir: $TMP/data
log_level: warn
wpr:
  path: $FAKE_WPR
  stop_timeout: 300s
profiles:
  - name: bench
    backend: wpr
    description: fake wpr copying the benchmark file
    args: [GeneralProfile]
EOF
FAKE_WPR_STATE_DIR=$TMP/state FAKE_WPR_ETL_SOURCE=$TMP/source.etl \
  "$AGENT" --config "$TMP/agent.yaml" --rest-listen off --port-file "$TMP/port" \
  >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
wait_for "the agent's port file" 15 test -s "$TMP/port"
ADDR=127.0.0.1:$(head -n1 "$TMP/port")

timeout 30 "$FETCH_CLIENT" --address "$ADDR" --timeout 20 --info --count 5 >&2
timeout 30 "$FETCH_CLIENT" --address "$ADDR" --timeout 20 \
  --start bench_fetch --profile bench >&2
t0=$(date +%s.%N)
ID=$(timeout 330 "$FETCH_CLIENT" --address "$ADDR" --timeout 320 \
  --stop bench_fetch)
t1=$(date +%s.%N)
ARTDIR=$TMP/data/artifacts
# The file is named after the id (the id with or without its extension).
FILE=
for f in "$ARTDIR/$ID" "$ARTDIR/$ID".*; do
  [[ -f $f && $f != *.meta.json ]] && { FILE=${f##*/}; break; }
done
[[ -n $FILE ]] || die "artifact $ID has no file in $ARTDIR"
[[ $(stat -c %s "$ARTDIR/$FILE") == "$SIZE" ]] || die "artifact size differs"
rm -f "$TMP/source.etl" # one copy in the page cache is enough
awk -v a="$t0" -v b="$t1" -v m="$SIZE_MB" \
  'BEGIN { printf "stop (fake wpr copy + sha256 of %d MiB): %.2f s\n", m, b - a }' >&2

# --- nginx -----------------------------------------------------------------
start_nginx() {
  local port=$1
  cat >"$TMP/nginx/nginx.conf" <<EOF
user $(id -un) $(id -gn);
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    root $ARTDIR;
  }
}
EOF
  "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" \
    >>"$TMP/nginx/error.log" 2>&1 &
  NGINX_PID=$!
}
NGINX_PORT=
for ((try = 0; try < 10; try++)); do
  port=$((20000 + RANDOM % 40000))
  port_is_free "$port" || continue
  start_nginx "$port"
  for ((i = 0; i < 50; i++)); do
    kill -0 "$NGINX_PID" 2>/dev/null || break
    if ! port_is_free "$port"; then NGINX_PORT=$port; break; fi
    sleep 0.1
  done
  [[ -n $NGINX_PORT ]] && break
  stop_pid "$NGINX_PID"
  NGINX_PID=
done
[[ -n $NGINX_PORT ]] || die "nginx did not start (see its error log)"
URL=http://127.0.0.1:$NGINX_PORT/$FILE

# --- measurements ----------------------------------------------------------
# Each prints MB/s (10^6 bytes per second, connection setup included).
run_fetch() { # [--no-verify]
  local out
  out=$(timeout 600 "$FETCH_CLIENT" --address "$ADDR" --timeout 590 \
    --artifact "$ID" --out /dev/null --chunk "$CHUNK" "$@") ||
    die "fetch_client failed: $out"
  [[ $out == *" bytes=$SIZE "* ]] || die "fetch_client: unexpected: $out"
  sed -E 's/.* MB\/s=([0-9.]+).*/\1/' <<<"$out"
}
run_curl() {
  local out bytes secs
  out=$(curl -sS --fail --max-time 600 -o /dev/null \
    -w '%{size_download} %{time_total}' "$URL") || die "curl failed"
  read -r bytes secs <<<"$out"
  [[ $bytes == "$SIZE" ]] || die "curl got $bytes bytes, want $SIZE"
  awk -v b="$bytes" -v t="$secs" 'BEGIN { printf "%.1f\n", b / t / 1e6 }'
}
# The client's hashing ceiling: openssl's SHA-256 of the file from page cache.
run_sha() {
  local t0 t1
  t0=$(date +%s.%N)
  timeout 300 openssl dgst -sha256 "$ARTDIR/$FILE" >/dev/null || die "openssl dgst failed"
  t1=$(date +%s.%N)
  awk -v b="$SIZE" -v a="$t0" -v c="$t1" 'BEGIN { printf "%.1f\n", b / (c - a) / 1e6 }'
}
median() { # DECIMALS VALUE...
  local d=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v d="$d" '{ v[NR] = $1 }
    END { printf "%.*f\n", d, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "warm-up (untimed): one run of each" >&2
run_fetch >/dev/null
run_fetch --no-verify >/dev/null
run_curl >/dev/null

F=() V=() U=() S=()
for ((r = 1; r <= RUNS; r++)); do
  F+=("$(run_fetch --no-verify)")
  U+=("$(run_curl)")
  V+=("$(run_fetch)")
  S+=("$(run_sha)")
  echo "run $r: agent ${F[-1]}, nginx ${U[-1]}, agent+sha256 ${V[-1]}, sha256 only ${S[-1]} MB/s" >&2
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
MF=$(median 1 "${F[@]}")
MU=$(median 1 "${U[@]}")
MV=$(median 1 "${V[@]}")
MS=$(median 1 "${S[@]}")
RATIO=$(ratio "$MF" "$MU")
VERDICT=$(awk -v r="$RATIO" -v t="$TARGET" 'BEGIN { print (r >= t) ? "meets" : "BELOW" }')

row() { printf '%-58s %8s   %s\n' "$@"; }
echo
echo "FetchArtifact throughput: ${SIZE_MB} MiB artifact over loopback, $RUNS runs each (alternating, after 1 warm-up), MB = 10^6 B"
echo "host: $(nproc) CPUs, $(uname -sr), loadavg $LOAD0 -> $LOAD1; chunk_size=$CHUNK (0 = agent default, 1 MiB)"
row "" "median" "runs (MB/s)"
row "labtrace-agent -> fetch_client --no-verify" "$MF" "${F[*]}"
row "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (sendfile) -> curl -o /dev/null [baseline]" "$MU" "${U[*]}"
row "labtrace-agent -> fetch_client (+ sha256 check)" "$MV" "${V[*]}"
row "openssl dgst -sha256 of the file (hash only)" "$MS" "${S[*]}"
echo "Both compared rows move the bytes to /dev/null and check the size; the"
echo "sha256 row adds the client's SHA-256 of every byte (not the agent's work)."
echo "RATIO fetch+sha256/nginx = $(ratio "$MV" "$MU")  (informational; bounded by the sha256-only row)"
echo "target: fetch/nginx >= $TARGET: $VERDICT"
echo "RATIO fetch/nginx = $RATIO"
