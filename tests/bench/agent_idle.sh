#!/usr/bin/env bash
# agent_idle.sh: memory and CPU of an idle labtrace-agent (no sessions),
# against an idle nginx worker measured in the same window. A benchmark, not
# a test: it prints numbers, the targets and ratios, and fails only if
# something breaks.
#
# Usage: tests/bench/agent_idle.sh [SECONDS]
#   SECONDS      length of the measured window (default 60), after 5 s of
#                settling.
# Environment:
#   BUILD_DIR    build tree (default /work/main/build): needs
#                agent/labtrace-agent and tests/bench/fetch_client
#   FETCH_CLIENT fetch_client binary (default $BUILD_DIR/tests/bench/fetch_client)
#   NGINX        nginx binary (default: nginx from PATH; installed with
#                apt-get install nginx-light curl when missing and root)
#
# The agent runs on 127.0.0.1 port 0 with its default profile catalog and a
# temp data dir; GetAgentInfo is called 20 times first so gRPC is warmed up.
# nginx (1 worker, private prefix, loopback port) serves one request first.
# Then, every second: VmRSS from /proc/PID/status (start, end, max); CPU% =
# (utime+stime delta from /proc/PID/stat) / (elapsed * CLK_TCK) * 100.
# MB = 10^6 bytes. Targets: agent RSS < 30 MB, CPU < 0.5 %.
set -euo pipefail

SECONDS_WANTED=${1:-60}
BUILD_DIR=${BUILD_DIR:-/work/main/build}
FETCH_CLIENT=${FETCH_CLIENT:-$BUILD_DIR/tests/bench/fetch_client}
AGENT=$BUILD_DIR/agent/labtrace-agent
SETTLE=5
RSS_TARGET_MB=30
CPU_TARGET_PCT=0.5

die() { echo "agent_idle: $*" >&2; exit 1; }

[[ $SECONDS_WANTED =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer"
for b in "$AGENT" "$FETCH_CLIENT"; do
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
CLK_TCK=$(getconf CLK_TCK)

TMP=$(mktemp -d /tmp/labtrace-bench-idle.XXXXXX)
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

wait_for() { # DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.1 s
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  die "timed out after ${secs}s waiting for $what"
}
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# rss_kb PID / cpu_ticks PID / threads PID
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { # fields 14 and 15 of /proc/PID/stat, counted after "(comm)"
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$stat"
}

# --- the agent -------------------------------------------------------------
mkdir -p "$TMP/data" "$TMP/www" "$TMP/nginx"
"$AGENT" --listen 127.0.0.1:0 --rest-listen 127.0.0.1:0 --data-dir "$TMP/data" --port-file "$TMP/port" \
  >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
wait_for "the agent's port file" 15 test -s "$TMP/port"
ADDR=127.0.0.1:$(head -n1 "$TMP/port")
timeout 30 "$FETCH_CLIENT" --address "$ADDR" --timeout 20 --info --count 20 >&2

# --- nginx -----------------------------------------------------------------
echo hello >"$TMP/www/index.html"
chmod -R a+rX "$TMP/www"
start_nginx() {
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
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server { listen 127.0.0.1:$1; root $TMP/www; }
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
curl -sS --fail --max-time 10 -o /dev/null "http://127.0.0.1:$NGINX_PORT/" ||
  die "nginx did not serve"
WORKER_PID=$(pgrep -P "$NGINX_PID" | head -n 1) || die "no nginx worker"

# --- measurement -----------------------------------------------------------
echo "settling ${SETTLE}s, then measuring ${SECONDS_WANTED}s" >&2
sleep "$SETTLE"
a_rss0=$(rss_kb "$AGENT_PID"); n_rss0=$(rss_kb "$WORKER_PID")
a_max=$a_rss0; n_max=$n_rss0
a_cpu0=$(cpu_ticks "$AGENT_PID"); n_cpu0=$(cpu_ticks "$WORKER_PID")
t0=$(date +%s.%N)
for ((s = 0; s < SECONDS_WANTED; s++)); do
  sleep 1
  kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited"
  kill -0 "$WORKER_PID" 2>/dev/null || die "the nginx worker exited"
  a=$(rss_kb "$AGENT_PID"); n=$(rss_kb "$WORKER_PID")
  ((a > a_max)) && a_max=$a
  ((n > n_max)) && n_max=$n
done
a_cpu1=$(cpu_ticks "$AGENT_PID"); n_cpu1=$(cpu_ticks "$WORKER_PID")
t1=$(date +%s.%N)
a_rss1=$(rss_kb "$AGENT_PID"); n_rss1=$(rss_kb "$WORKER_PID")
a_thr=$(threads "$AGENT_PID"); n_thr=$(threads "$WORKER_PID")

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }'; }
pct() { awk -v d="$1" -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" \
  'BEGIN { printf "%.3f", d / ((b - a) * hz) * 100 }'; }
a_pct=$(pct $((a_cpu1 - a_cpu0))); n_pct=$(pct $((n_cpu1 - n_cpu0)))
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "meets" : "OVER" }'; }

echo
echo "Idle footprint over $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (after ${SETTLE} s settling), MB = 10^6 B, CLK_TCK=$CLK_TCK"
printf '%-26s %9s %9s %9s %8s %8s %8s\n' process "RSS start" "RSS end" "RSS max" "CPU %" "ticks" threads
printf '%-26s %9s %9s %9s %8s %8s %8s\n' "labtrace-agent (idle)" \
  "$(mb "$a_rss0")" "$(mb "$a_rss1")" "$(mb "$a_max")" "$a_pct" $((a_cpu1 - a_cpu0)) "$a_thr"
printf '%-26s %9s %9s %9s %8s %8s %8s\n' "nginx worker (baseline)" \
  "$(mb "$n_rss0")" "$(mb "$n_rss1")" "$(mb "$n_max")" "$n_pct" $((n_cpu1 - n_cpu0)) "$n_thr"
echo "targets: agent RSS max < ${RSS_TARGET_MB} MB: $(verdict "$(mb "$a_max")" "$RSS_TARGET_MB");" \
  "agent CPU < ${CPU_TARGET_PCT} %: $(verdict "$a_pct" "$CPU_TARGET_PCT")"
if (((n_cpu1 - n_cpu0) > 0)); then
  echo "RATIO agent_cpu/nginx_cpu = $(awk -v a=$((a_cpu1 - a_cpu0)) -v b=$((n_cpu1 - n_cpu0)) 'BEGIN { printf "%.2f", a / b }')"
else
  echo "RATIO agent_cpu/nginx_cpu = n/a (nginx used 0 ticks; agent used $((a_cpu1 - a_cpu0)))"
fi
echo "RATIO agent_rss/nginx_rss = $(awk -v a="$a_max" -v b="$n_max" 'BEGIN { printf "%.2f", a / b }')"
