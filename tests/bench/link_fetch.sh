#!/usr/bin/env bash
# link_fetch.sh: `labtrace fetch` (gRPC, zstd chunks) against nginx + curl
# for the same ETL file across a rate-limited link, in the same run. A
# benchmark: it prints numbers and ratios, and fails only if something breaks
# (setup, a transfer, a sha256 mismatch, a timeout).
#
# Usage: tests/bench/link_fetch.sh [RUNS]   (best of RUNS, default 3)
# Environment: BUILD_DIR (default: build/ of this checkout; the agent, the
#   controller and tests/fake_wpr are copied to the temp dir at start),
#   SIZE_1G_MB (default 1024), SIZE_100M_MB (default 256: a smaller file keeps
#   the 100 Mbit/s runs short), DELAY_MS (default 0.25 one way, if the kernel
#   has netem), ZSTD_LEVEL (agent limits.zstd_level; default: the agent's),
#   OUT_TMPFS (default 1: the clients write into a tmpfs, so neither side's
#   time depends on the disk; 0: into the temp dir on disk).
# Needs root (network namespaces, tc), ip, tc, nginx (bash
# deploy/install_deps.sh --bench), curl, python3; ping and zstd are optional
# (ICMP RTT; the file's zstd -1/-3 ratio). Without root it says SKIPPED and
# exits 0.
#
# Two network namespaces joined by a veth pair, 10.77.0.1/24 (server: the
# agent and nginx) and 10.77.0.2/24 (clients), shaped on both ends' egress:
# netem delay DELAY_MS + rate when the kernel has netem, else tbf (rate only;
# the RTT is the veth's own). The agent listens on 10.77.0.1 with --insecure
# (no TLS, no tokens): allowed without it on loopback only, and harmless here,
# since only this private namespace pair can reach that address. The files
# are real ETL buffers repeated (tests/bench/make_big_etl.py), made artifacts
# through fake_wpr (labtrace start/stop); nginx (sendfile on) serves the
# agent's artifacts dir. Per run: wall time of `labtrace fetch` (writes,
# hashes and fsyncs the file) and of `curl -o` (+ `sync FILE`, shown apart);
# MB/s = file bytes / wall time, MB = 10^6 B; wire MB/s = bytes the server's
# veth sent / the same wall time (against the link's 125 or 12.5 MB/s: near it,
# the link is the bottleneck; well under it, a CPU is); every fetched file's
# sha256 is checked against the original. Agent CPU s come from /proc/PID/stat; the
# clients' from /usr/bin/time. Everything (namespaces, processes, files) is
# removed at exit. All runs share this host's CPUs: run it on a quiet machine.
set -euo pipefail

RUNS=${1:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SIZE_1G_MB=${SIZE_1G_MB:-1024} SIZE_100M_MB=${SIZE_100M_MB:-256}
DELAY_MS=${DELAY_MS:-0.25} ZSTD_LEVEL=${ZSTD_LEVEL:-} OUT_TMPFS=${OUT_TMPFS:-1}
NS_S=ltfs$$ NS_C=ltfc$$ IF_S=ltfs$$ IF_C=ltfc$$ IP_S=10.77.0.1 IP_C=10.77.0.2

die() { echo "link_fetch: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "link_fetch: SKIPPED: needs root (ip netns, tc)" >&2; exit 0; }
for v in RUNS SIZE_1G_MB SIZE_100M_MB; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v: not a positive integer"; done
[[ -z $ZSTD_LEVEL || $ZSTD_LEVEL =~ ^-?[0-9]+$ ]] || die "ZSTD_LEVEL: not an integer"
for c in ip tc nginx curl sha256sum python3 /usr/bin/time; do
  command -v "$c" >/dev/null || die "need $c (nginx: bash deploy/install_deps.sh --bench)"
done
for b in agent/labtrace-agent controller/labtrace tests/fake_wpr; do
  [[ -x $BUILD_DIR/$b ]] || die "missing $BUILD_DIR/$b (build first)"
done

TMP=$(mktemp -d /tmp/labtrace-bench-link.XXXXXX)
AGENT_PID='' NGINX_PID=''
stop_pid() { # PID: SIGTERM, up to 10 s, then SIGKILL
  kill -TERM "$1" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
}
cleanup() {
  local rc=$? f
  [[ -n $NGINX_PID ]] && stop_pid "$NGINX_PID"
  [[ -n $AGENT_PID ]] && stop_pid "$AGENT_PID"
  mountpoint -q "$TMP/out" 2>/dev/null && umount "$TMP/out"
  ip netns del "$NS_C" 2>/dev/null || true; ip netns del "$NS_S" 2>/dev/null || true
  for f in "$TMP/agent.log" "$TMP/nginx/error.log" "$TMP/cmd.log"; do
    [[ $rc != 0 && -s $f ]] && { echo "--- tail of $f" >&2; tail -n 15 "$f" >&2; }
  done
  rm -rf "$TMP"; exit "$rc"
}
trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM
S() { ip netns exec "$NS_S" "$@"; }
C() { ip netns exec "$NS_C" "$@"; }
now() { date +%s.%N; }
cpu() { # PID...: utime + stime, in seconds
  local p t=0; for p in "$@"; do t=$((t + $(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null | tr ' ' + || echo 0))); done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
best() { (($#)) || { echo -; return; }; printf '%s\n' "$@" | sort -g | tail -n1; }
mean() { (($#)) || { echo -; return; }; printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.2f", s / NR }'; }

# --- binaries, files, namespaces ------------------------------------------------
mkdir -p "$TMP/state" "$TMP/data" "$TMP/nginx" "$TMP/out" "$TMP/src"
[[ $OUT_TMPFS == 1 ]] && mount -t tmpfs -o size=$(((SIZE_1G_MB > SIZE_100M_MB ? SIZE_1G_MB : SIZE_100M_MB) * 2 + 64))m \
  labtrace-bench "$TMP/out"
cp "$BUILD_DIR/agent/labtrace-agent" "$BUILD_DIR/controller/labtrace" "$BUILD_DIR/tests/fake_wpr" "$TMP/"
LT=$TMP/labtrace
NOCOMP='' # a flag that turns zstd off, if this labtrace has one (none so far: compression is always asked for)
for f in --no-compression --no-compress --no-zstd; do "$LT" fetch --help 2>&1 | grep -q -- "$f" && { NOCOMP=$f; break; }; done
declare -A SZ ZR
for mb in "$SIZE_1G_MB" "$SIZE_100M_MB"; do
  [[ -f $TMP/src/$mb.etl ]] && continue
  timeout 300 python3 "$ROOT/tests/bench/make_big_etl.py" "$TMP/src/$mb.etl" --size-mb "$mb"
  timeout 300 "$LT" inspect "$TMP/src/$mb.etl" --json >"$TMP/inspect.json" || die "inspect $mb.etl: $(cat "$TMP/inspect.json")"
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))[0]["summary"]
sys.exit(not (s.get("header_valid") and s["buffers_found"] == s["buffers_written"]
  and not any("truncated" in p for p in s.get("problems", []))))' "$TMP/inspect.json" ||
    die "$mb.etl does not inspect clean: $(cat "$TMP/inspect.json")"
  SZ[$mb]=$(stat -c %s "$TMP/src/$mb.etl")
  echo "$mb.etl: $("$LT" inspect "$TMP/src/$mb.etl" | tail -n1 | tr -s ' ')" >&2
  if command -v zstd >/dev/null; then
    ZR[$mb]="$mb MiB:"
    for l in 1 3; do ZR[$mb]+=" zstd -$l $(calc %.2f "${SZ[$mb]} / $(timeout 300 zstd -q -$l -c "$TMP/src/$mb.etl" | wc -c)"):1"; done
    ZR[$mb]+=";"
  fi
done
ip netns add "$NS_S"; ip netns add "$NS_C"
ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
S ip addr add "$IP_S/24" dev "$IF_S"; C ip addr add "$IP_C/24" dev "$IF_C"
S ip link set lo up; C ip link set lo up; S ip link set "$IF_S" up; C ip link set "$IF_C" up
SHAPER=tbf; S tc qdisc add dev "$IF_S" root netem delay "${DELAY_MS}ms" 2>/dev/null && SHAPER=netem
shape() { # RATE BURST (tbf bucket, bytes: 1 ms of RATE, at least 64 KiB): egress of both ends
  if [[ $SHAPER == netem ]]; then set -- netem delay "${DELAY_MS}ms" rate "$1" limit 100000
  else set -- tbf rate "$1" burst "$2" latency 20ms; fi
  S tc qdisc replace dev "$IF_S" root "$@"; C tc qdisc replace dev "$IF_C" root "$@"
  TC_DESC="tc qdisc replace dev <both veth ends> root $*"
}

# --- the agent, the artifacts, nginx --------------------------------------------
{ echo "data_dir: $TMP/data"; echo "log_level: warn"
  echo "limits: {min_free_bytes: 64MiB${ZSTD_LEVEL:+, zstd_level: $ZSTD_LEVEL}}"
  echo "wpr: {path: $TMP/fake_wpr, stop_timeout: 300s}"
  echo "profiles: [{name: bench, backend: wpr, args: [GeneralProfile]}]"; } >"$TMP/agent.yaml"
FAKE_WPR_STATE_DIR=$TMP/state ip netns exec "$NS_S" "$TMP/labtrace-agent" --config "$TMP/agent.yaml" --insecure \
  --listen "$IP_S:7411" --rest-listen off --port-file "$TMP/port" >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
for ((i = 0; i < 150; i++)); do [[ -s $TMP/port ]] && break; sleep 0.1; done
[[ -s $TMP/port ]] || die "the agent wrote no port file in 15 s"
printf 'defaults: {port: 7411, connect_timeout: 3s}\nhosts:\n  - name: srv\n    address: %s:7411\n' "$IP_S" >"$TMP/inv.yaml"
declare -A FILE SHA
for mb in "$SIZE_1G_MB" "$SIZE_100M_MB"; do
  [[ -n ${FILE[$mb]:-} ]] && continue
  echo "FAKE_WPR_ETL_SOURCE=$TMP/src/$mb.etl" >"$TMP/state/control.env"
  C timeout 60 "$LT" start "link$mb" --profile bench --run-id "link$mb" --inventory "$TMP/inv.yaml" >"$TMP/cmd.log" 2>&1 || die "labtrace start failed"
  C timeout 330 "$LT" stop "link$mb" --timeout 5m --inventory "$TMP/inv.yaml" >"$TMP/cmd.log" 2>&1 || die "labtrace stop failed"
  SHA[$mb]=$(timeout 300 sha256sum <"$TMP/src/$mb.etl" | cut -d' ' -f1)
  for f in "$TMP"/data/artifacts/*; do
    [[ -f $f && $f != *.json && $(stat -c %s "$f") == $(stat -c %s "$TMP/src/$mb.etl") ]] &&
      cmp -s "$f" "$TMP/src/$mb.etl" && FILE[$mb]=${f##*/}
  done
  [[ -n ${FILE[$mb]:-} ]] || die "no artifact file equal to $mb.etl in $TMP/data/artifacts"
done
rm -rf "$TMP/src" # the artifacts are the copies served from now on
cat >"$TMP/nginx/nginx.conf" <<EOF
user $(id -un) $(id -gn); daemon off; worker_processes 1; pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn; events { worker_connections 64; }
http { access_log off; sendfile on; default_type application/octet-stream;
  client_body_temp_path $TMP/nginx/b; proxy_temp_path $TMP/nginx/p; fastcgi_temp_path $TMP/nginx/f;
  uwsgi_temp_path $TMP/nginx/u; scgi_temp_path $TMP/nginx/s;
  server { listen $IP_S:8080; root $TMP/data/artifacts; } }
EOF
ip netns exec "$NS_S" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >>"$TMP/nginx/error.log" 2>&1 &
NGINX_PID=$!
PROBE=http://$IP_S:8080/${FILE[$SIZE_100M_MB]} # HEAD requests: wait for nginx, time TCP connects
for ((i = 0; i < 50; i++)); do C curl -sfI -o /dev/null --max-time 1 "$PROBE" && break; sleep 0.1; done
C curl -sfI -o /dev/null --max-time 2 "$PROBE" || die "nginx did not start"
# shellcheck disable=SC2046 # one word per pid
nginx_cpu() { cpu "$NGINX_PID" $(ps --ppid "$NGINX_PID" -o pid= 2>/dev/null); }

# --- timed runs ---------------------------------------------------------------
check() { # FILE MB: sha256 of a fetched file
  local got; got=$(timeout 300 sha256sum <"$1" | cut -d' ' -f1)
  [[ $got == "${SHA[$2]}" ]] || die "$1: sha256 $got, want ${SHA[$2]}"; rm -f "$1"
}
run_lt() { # MB [--no-compression] -> MB/s agent-cpu-s client-cpu-s wire-MB wire-MB/s
  local mb=$1 t0 t1 a0 a1 w0 w1; shift; rm -rf "$TMP/out/link$mb"
  a0=$(cpu "$AGENT_PID") w0=$(S cat "/sys/class/net/$IF_S/statistics/tx_bytes") t0=$(now)
  C /usr/bin/time -f '%U %S' -o "$TMP/time" timeout 900 "$LT" fetch --out "$TMP/out" --run "link$mb" \
    --inventory "$TMP/inv.yaml" --timeout 14m "$@" >"$TMP/cmd.log" 2>&1 || die "labtrace fetch $* failed"
  t1=$(now) a1=$(cpu "$AGENT_PID") w1=$(S cat "/sys/class/net/$IF_S/statistics/tx_bytes")
  check "$TMP/out/link$mb/srv/${FILE[$mb]}" "$mb"
  echo "$(calc %.1f "${SZ[$mb]} / ($t1 - $t0) / 1e6") $(calc %.2f "$a1 - $a0")" \
    "$(awk '{ printf "%.2f", $1 + $2 }' "$TMP/time") $(calc %.1f "($w1 - $w0) / 1e6")" \
    "$(calc %.1f "($w1 - $w0) / ($t1 - $t0) / 1e6")"
}
run_curl() { # MB -> MB/s MB/s-with-fsync nginx-cpu-s client-cpu-s
  local mb=$1 out=$TMP/out/curl.$1 t0 t1 t2 n0 n1
  n0=$(nginx_cpu) t0=$(now)
  C /usr/bin/time -f '%U %S' -o "$TMP/time" curl -sS --fail --max-time 900 -o "$out" \
    "http://$IP_S:8080/${FILE[$mb]}" 2>"$TMP/cmd.log" || die "curl failed"
  t1=$(now) n1=$(nginx_cpu); timeout 300 sync "$out"; t2=$(now)
  check "$out" "$mb"
  echo "$(calc %.1f "${SZ[$mb]} / ($t1 - $t0) / 1e6") $(calc %.1f "${SZ[$mb]} / ($t2 - $t0) / 1e6")" \
    "$(calc %.2f "$n1 - $n0") $(awk '{ printf "%.2f", $1 + $2 }' "$TMP/time")"
}
ping_ms() { # ICMP RTT across the veth, idle link: min/avg/max ms of 20 pings
  command -v ping >/dev/null || { echo n/a; return; }
  C ping -n -q -c 20 -i 0.05 "$IP_S" | awk -F'[ /]+' '/^rtt|^round-trip/ { printf "%s/%s/%s", $7, $8, $9 }'
}
rtt_ms() { # shortest of 9 TCP connects to nginx (about 1 RTT), ms
  for ((i = 0; i < 9; i++)); do C curl -sI -o /dev/null --max-time 5 -w '%{time_connect}\n' "$PROBE"; done |
    sort -g | awk 'NR == 1 { printf "%.3f", $1 * 1000 }'
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=() FINAL=()
for sc in "1gbit 125000 125 $SIZE_1G_MB 1 Gbit/s" "100mbit 65536 12.5 $SIZE_100M_MB 100 Mbit/s"; do
  read -r rate burst link_mbs mb label <<<"$sc"
  shape "$rate" "$burst"; rtt=$(rtt_ms) png=$(ping_ms)
  echo "$label, ${mb} MiB: $TC_DESC; TCP connect $rtt ms, ping min/avg/max $png ms; warm-up (untimed), then $RUNS runs" >&2
  run_lt "$mb" >/dev/null; [[ -n $NOCOMP ]] && run_lt "$mb" "$NOCOMP" >/dev/null; run_curl "$mb" >/dev/null
  L=() LC=() LW=() LK=() LR=() R=() N=() NS=() NC=() CC=() RC=()
  for ((r = 1; r <= RUNS; r++)); do
    out=$(run_lt "$mb") || exit 1; read -r a b c d e <<<"$out"; L+=("$a") LC+=("$b") LK+=("$c") LW+=("$d") LR+=("$e")
    raw='' && if [[ -n $NOCOMP ]]; then
      out=$(run_lt "$mb" "$NOCOMP") || exit 1; read -r a b c d e <<<"$out"; R+=("$a") RC+=("$b")
      raw=", $NOCOMP $a MB/s (agent $b s CPU)"
    fi
    out=$(run_curl "$mb") || exit 1; read -r a b c d <<<"$out"; N+=("$a") NS+=("$b") NC+=("$c") CC+=("$d")
    echo "  run $r: labtrace ${L[-1]} MB/s (agent ${LC[-1]} s CPU, ${LW[-1]} MB sent, wire ${LR[-1]} MB/s)$raw, nginx+curl $a (+fsync $b) MB/s" >&2
  done
  bl=$(best "${L[@]}") bn=$(best "${N[@]}") bs=$(best "${NS[@]}") ml=$(mean "${L[@]}") mn=$(mean "${N[@]}")
  ROWS+=("$(printf '%-11s %5s %-5s %8s %8s %8s %8s %6s %6s  %s' "$label" "$mb" best "$bl" "$(best "${R[@]}")" \
    "$bn" "$bs" "$(calc %.2f "$bl / $bn")" "$rtt" "${L[*]} | ${R[*]:--} | ${N[*]}")")
  ROWS+=("$(printf '%-11s %5s %-5s %8s %8s %8s %8s %6s %6s  ping %s' '' '' mean "$ml" "$(mean "${R[@]}")" \
    "$mn" "$(mean "${NS[@]}")" "$(calc %.2f "$ml / $mn")" '' "$png")")
  ROWS+=("$(printf '%-11s CPU s per run (mean): agent %s (zstd)%s, labtrace fetch %s; nginx %s, curl %s; wire %s MB of %s MB' \
    '' "$(mean "${LC[@]}")" "${RC[*]:+, $(mean "${RC[@]}") (raw)}" "$(mean "${LK[@]}")" \
    "$(mean "${NC[@]}")" "$(mean "${CC[@]}")" \
    "${LW[0]}" "$(calc %.1f "${SZ[$mb]} / 1e6")")")
  ROWS+=("$(printf '%-11s labtrace wire MB/s per run: %s (link: %s MB/s)' '' "${LR[*]}" "$link_mbs")")
  FINAL+=("ratio (labtrace zstd / nginx, $label): best $(calc %.2f "$bl / $bn"), mean $(calc %.2f "$ml / $mn")")
  FINAL+=("ratio (labtrace zstd / nginx+fsync, $label): $(calc %.2f "$bl / $bs")")
done

echo
echo "labtrace fetch (zstd${ZSTD_LEVEL:+ level $ZSTD_LEVEL}) vs nginx+curl across a shaped veth; best of $RUNS; MB/s = file bytes / wall s, MB = 10^6 B"
echo "host: $(nproc) CPUs, $(uname -r), loadavg $LOAD0 -> $(cut -d' ' -f1-3 /proc/loadavg); shaper: $SHAPER$([[ $SHAPER == tbf ]] && echo " (no netem in this kernel: no added delay)")"
echo "file: ${ZR[*]:-(no zstd CLI)} (whole file; the agent compresses each chunk on its own); client output: $([[ $OUT_TMPFS == 1 ]] && echo tmpfs || echo disk)"
printf '%-11s %5s %-5s %8s %8s %8s %8s %6s %6s  %s\n' link MiB '' labtrace raw nginx +fsync ratio rtt_ms "runs: labtrace | raw | nginx"
echo "(labtrace = fetch with zstd, raw = ${NOCOMP:-no such flag in this labtrace}, nginx = curl -o, +fsync = curl -o then sync FILE, ratio = labtrace/nginx)"
printf '%s\n' "${ROWS[@]}" "${FINAL[@]}"
