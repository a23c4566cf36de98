#!/usr/bin/env bash
# A one-node Ceph RADOS Gateway: a real S3-compatible server on 127.0.0.1 for
# tests and local use, from Debian packages (monitor + manager + one memstore
# OSD + radosgw, no auth between daemons, everything under one state dir).
#
# Usage: bash deploy/object-store/local-s3.sh start|stop [--wipe]|env|status
#   start   install packages if missing, create or restart the cluster, create
#           the user and bucket, print the env (no-op + env if already up)
#   env     print `export ...` lines for eval "$(bash local-s3.sh env)"
#   stop    stop every daemon (data kept in the state dir); --wipe removes it
#   status  exit 0 if every daemon runs and the gateway answers HTTP
#
# Logs, pid files, keys and the generated ceph.conf are all in the state dir.
#
# Environment:
#   LABTRACE_S3_DIR     state dir            (default /tmp/labtrace-s3)
#   LABTRACE_S3_PORT    gateway port, 0=free (default 0; a picked port is kept)
#   LABTRACE_S3_BUCKET  bucket to create     (default labtrace)
#   LABTRACE_S3_TIMEOUT seconds per wait     (default 60)
set -euo pipefail

dir="${LABTRACE_S3_DIR:-/tmp/labtrace-s3}"
want_port="${LABTRACE_S3_PORT:-0}"
bucket="${LABTRACE_S3_BUCKET:-labtrace}"
timeout_s="${LABTRACE_S3_TIMEOUT:-60}"
region="us-east-1"  # radosgw accepts any region string in the SigV4 scope; us-east-1 is every SDK's default
conf="$dir/ceph.conf"
rgw_name="client.rgw.a"
pools=(.rgw.root default.rgw.log default.rgw.control default.rgw.meta
       default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec)
# Debian's ceph binaries first (and /usr/bin/python3 is used explicitly: the
# rados/boto3 modules are installed for it, not for a pyenv/venv python3).
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

log() { echo "local-s3: $*" >&2; }
die() { log "$*"; exit 1; }

if ! [[ "$want_port" =~ ^[0-9]+$ ]] || ((want_port > 65535)); then
  die "LABTRACE_S3_PORT=$want_port is not a port number"
fi
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "LABTRACE_S3_TIMEOUT=$timeout_s is not a number of seconds"

# fail WHAT LOGNAME: print the tail of a daemon log and exit non-zero.
fail() {
  log "$1"
  local f="$dir/log/$2.log"
  if [[ -f "$f" ]]; then
    log "--- last lines of $f:"
    grep -E '^[0-9]{4}-' "$f" | grep -v ' rocksdb: ' | tail -n 25 >&2 || true
  fi
  exit 1
}

ceph_cmd() { timeout 10 ceph -c "$conf" --connect-timeout 5 "$@"; }

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_in_use() {  # PORT: is something listening on 127.0.0.1:PORT?
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

gateway_port() { [[ -s "$dir/rgw.port" ]] && cat "$dir/rgw.port"; }

gateway_up() {
  local port code
  port="$(gateway_port)" || return 1
  pid_alive "$rgw_name" || return 1
  code="$(curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:$port/" || true)"
  [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

pid_of() { [[ -s "$dir/run/$1.pid" ]] && cat "$dir/run/$1.pid"; }
# proc_live PID: a running (not zombie) ceph daemon? A stale pid file after a
# reboot may name an unrelated process.
proc_live() {
  local comm stat
  comm="$(cat "/proc/$1/comm" 2>/dev/null)" || return 1
  [[ "$comm" == ceph-* || "$comm" == radosgw ]] || return 1
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}
pid_alive() {
  local pid
  pid="$(pid_of "$1")" || return 1
  proc_live "$pid"
}

daemons=(mon.a mgr.x osd.0 "$rgw_name")

# cluster_up: every daemon running and the gateway answering HTTP. (With the
# OSD down the gateway still answers anonymous requests, but data requests hang.)
cluster_up() {
  [[ -f "$conf" ]] || return 1
  local d
  for d in "${daemons[@]}"; do pid_alive "$d" || return 1; done
  gateway_up
}

down_daemons() {
  local d out=()
  for d in "${daemons[@]}"; do pid_alive "$d" || out+=("$d"); done
  echo "${out[*]}"
}

print_env() {
  local port key secret
  port="$(gateway_port)" || die "no gateway port recorded in $dir"
  read -r key secret <"$dir/credentials"
  cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=$region
export AWS_DEFAULT_REGION=$region
export LABTRACE_S3_BUCKET=$(cat "$dir/bucket")
EOF
}

install_packages() {
  local need=0 b
  for b in ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool curl; do
    command -v "$b" >/dev/null 2>&1 || need=1
  done
  /usr/bin/python3 -c 'import boto3, rados' 2>/dev/null || need=1
  ((need)) || return 0
  [[ $EUID -eq 0 ]] || die "ceph packages missing and not root: install ceph-mon ceph-mgr ceph-osd radosgw ceph-common python3-boto3"
  log "installing ceph packages (~80 MB)"
  local pkgs=(ceph-mon ceph-mgr ceph-osd radosgw ceph-common python3-boto3 curl)
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >"$dir/install.log" 2>&1; then
    apt-get update >>"$dir/install.log" 2>&1 || true
    apt-get install -y --no-install-recommends "${pkgs[@]}" >>"$dir/install.log" 2>&1 \
      || { tail -n 20 "$dir/install.log" >&2; die "apt-get install failed (log: $dir/install.log)"; }
  fi
}

mgr_modules() {  # every installed ceph-mgr Python module, space-separated
  local d names=()
  for d in /usr/share/ceph/mgr/*/; do
    d="${d%/}"; names+=("${d##*/}")
  done
  echo "${names[*]}"
}

write_conf() {
  local fsid mon_port
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  mon_port="$(free_port)"
  cat >"$conf.tmp" <<EOF
# Generated by local-s3.sh: a one-node test cluster bound to 127.0.0.1.
# Every path is set here; the packaged defaults point into /var/lib/ceph,
# /var/run/ceph and /var/log/ceph.
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$mon_port]
mon_initial_members = a
public_addr = 127.0.0.1
ms_bind_msgr1 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = $dir/keyring
run_dir = $dir/run
crash_dir = $dir/crash
log_file = $dir/log/\$name.log
mon_cluster_log_file = $dir/log/\$cluster.\$channel.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
paxos_propose_interval = 0.01

[mon]
mon_data = $dir/mon-\$id
pid_file = $dir/run/\$name.pid

[mgr]
mgr_data = $dir/mgr-\$id
# No Python modules (~300 MB RSS -> ~45 MB); the gateway needs none of them.
# The skipped always-on ones raise MGR_MODULE_ERROR, muted at creation.
mgr_disabled_modules = $(mgr_modules) diskprediction_local
pid_file = $dir/run/\$name.pid

[osd]
osd_data = $dir/osd-\$id
osd_journal = $dir/osd-\$id/journal
osd_objectstore = memstore
# RAM, used only as written; a full memstore hangs instead of failing.
memstore_device_bytes = 8589934592
# memstore saves its data to osd_data only on a clean (non-fast) shutdown.
osd_fast_shutdown = false
pid_file = $dir/run/\$name.pid

[$rgw_name]
rgw_data = $dir/rgw-\$id
pid_file = $dir/run/\$name.pid
rgw_init_timeout = $timeout_s
client_mount_timeout = $timeout_s
# radosgw's built-in defaults ask for cephx and a "secure" mon connection,
# which cannot be had with auth none (the gateway then hangs in AUTH_CONNECTING).
ms_mon_client_mode = crc
EOF
  mv "$conf.tmp" "$conf"
}

# wait_for WHAT DAEMON CMD...: retry CMD every 0.2 s up to the timeout; give up
# early if DAEMON exits.
wait_for() {
  local what="$1" logname="$2"; shift 2
  local deadline=$((SECONDS + timeout_s))
  until "$@" >/dev/null 2>&1; do
    pid_alive "$logname" || fail "$logname exited while waiting for $what" "$logname"
    ((SECONDS < deadline)) || fail "timed out after ${timeout_s}s waiting for $what" "$logname"
    sleep 0.2
  done
}

# start_daemon NAME CMD...: start a (self-daemonizing) ceph daemon unless its
# pid file names a live process. Bounded; on failure kills what it started.
start_daemon() {
  local name="$1"; shift
  pid_alive "$name" && return 0
  rm -f "$dir/run/$name.pid"   # stale
  if ! timeout "$timeout_s" "$@" >>"$dir/log/daemon-start.out" 2>&1; then
    local pid
    pid="$(pid_of "$name")" && proc_live "$pid" && kill -KILL "$pid" 2>/dev/null
    rm -f "$dir/run/$name.pid"
    tail -n 5 "$dir/log/daemon-start.out" >&2
    fail "$name did not start (or timed out after ${timeout_s}s)" "$name"
  fi
  # Some daemons fork and return before the child writes its pid file.
  local deadline=$((SECONDS + timeout_s))
  until [[ -s "$dir/run/$name.pid" ]]; do
    ((SECONDS < deadline)) || fail "$name wrote no pid file in ${timeout_s}s" "$name"
    sleep 0.05
  done
}

osd_is_up() {
  ceph_cmd osd stat -f json | /usr/bin/python3 -c \
    'import json,sys; d=json.load(sys.stdin); d=d.get("osdmap",d); sys.exit(0 if d["num_up_osds"]>=1 else 1)'
}

create_pools() {
  local existing p cmds=""
  existing="$(ceph_cmd osd pool ls)" || fail "cannot list pools" mon.a
  for p in "${pools[@]}"; do
    grep -qxF -- "$p" <<<"$existing" && continue
    cmds+="osd pool create $p 8 8"$'\n'"osd pool application enable $p rgw"$'\n'
  done
  [[ -n "$cmds" ]] || return 0
  cmds+="health mute MGR_MODULE_ERROR --sticky"$'\n'
  # One ceph process runs every command read from stdin.
  local out
  out="$(timeout "$timeout_s" ceph -c "$conf" --connect-timeout 5 <<<"$cmds" 2>&1)" \
    || { echo "$out" >&2; fail "pool creation failed" mon.a; }
}

ensure_user() {
  local key secret
  read -r key secret <"$dir/credentials"
  if ! timeout 30 radosgw-admin -c "$conf" user info --uid=labtrace >/dev/null 2>&1; then
    timeout 30 radosgw-admin -c "$conf" user create --uid=labtrace --display-name=labtrace \
      --access-key="$key" --secret-key="$secret" >"$dir/log/user-create.out" 2>&1 \
      || { cat "$dir/log/user-create.out" >&2; fail "radosgw-admin user create failed" "$rgw_name"; }
  fi
}

s3_curl() {  # METHOD PATH [curl args...]: SigV4-signed request, prints HTTP status
  local method="$1" path="$2" key secret; shift 2
  read -r key secret <"$dir/credentials"
  local verb=(-X "$method")
  [[ "$method" == HEAD ]] && verb=(-I)   # -X HEAD would wait for a body
  curl -s -o /dev/null -m 10 -w '%{http_code}' "${verb[@]}" \
    --aws-sigv4 "aws:amz:$region:s3" --user "$key:$secret" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" \
    "http://127.0.0.1:$(gateway_port)$path" || true
}

ensure_bucket() {
  local code
  code="$(s3_curl HEAD "/$bucket")"
  if [[ "$code" == 404 ]]; then
    code="$(s3_curl PUT "/$bucket")"
    [[ "$code" == 200 ]] || fail "creating bucket $bucket answered HTTP $code" "$rgw_name"
  elif [[ "$code" != 200 ]]; then
    fail "HEAD bucket $bucket answered HTTP $code" "$rgw_name"
  fi
  echo "$bucket" >"$dir/bucket"
}

start() {
  if cluster_up; then
    [[ "$want_port" == 0 || "$want_port" == "$(gateway_port)" ]] \
      || log "already up on port $(gateway_port); LABTRACE_S3_PORT=$want_port ignored (stop first to change it)"
    print_env
    return 0
  fi
  mkdir -p "$dir"
  install_packages
  mkdir -p "$dir/run" "$dir/log" "$dir/crash"
  [[ -f "$conf" ]] || write_conf
  if [[ ! -s "$dir/credentials" ]]; then
    /usr/bin/python3 -c 'import secrets, string
a = string.ascii_uppercase + string.digits
print("".join(secrets.choice(a) for _ in range(20)), secrets.token_urlsafe(30)[:40].replace("-", "A").replace("_", "z"))' \
      >"$dir/credentials"
    chmod 600 "$dir/credentials"
  fi

  # Monitor.
  if [[ ! -f "$dir/mon-a/.mkfs-done" ]]; then
    rm -rf "$dir/mon-a"
    local fsid mon_addr
    fsid="$(sed -n 's/^fsid = //p' "$conf")"
    mon_addr="$(sed -n 's/^mon_host = \[\(.*\)\]$/\1/p' "$conf")"
    ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --clobber --fsid "$fsid" --addv a "[$mon_addr]" "$dir/monmap" >/dev/null
    ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
      >"$dir/log/mon-mkfs.out" 2>&1 || { cat "$dir/log/mon-mkfs.out" >&2; fail "ceph-mon --mkfs failed" mon.a; }
    touch "$dir/mon-a/.mkfs-done"
  fi
  if ! pid_alive mon.a; then
    local mon_port
    mon_port="$(sed -n 's/^mon_host = \[v2:127.0.0.1:\(.*\)\]$/\1/p' "$conf")"
    port_in_use "$mon_port" && die "monitor port 127.0.0.1:$mon_port (fixed in $dir/mon-a) is in use by another process"
    start_daemon mon.a ceph-mon -c "$conf" -i a
  fi
  wait_for "the monitor" mon.a ceph_cmd mon stat

  # Manager.
  mkdir -p "$dir/mgr-x"
  start_daemon mgr.x ceph-mgr -c "$conf" -i x

  # One memstore OSD.
  if [[ ! -f "$dir/osd-0/.mkfs-done" ]]; then
    local osd_uuid osd_id
    [[ -s "$dir/osd.uuid" ]] || cat /proc/sys/kernel/random/uuid >"$dir/osd.uuid"
    osd_uuid="$(cat "$dir/osd.uuid")"
    osd_id="$(ceph_cmd osd new "$osd_uuid")" || fail "ceph osd new failed" mon.a
    [[ "$osd_id" == 0 ]] || die "expected osd id 0, got '$osd_id'"
    rm -rf "$dir/osd-0"
    mkdir -p "$dir/osd-0"
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1 \
      || { cat "$dir/log/osd-mkfs.out" >&2; fail "ceph-osd --mkfs failed" osd.0; }
    touch "$dir/osd-0/.mkfs-done"
  fi
  start_daemon osd.0 ceph-osd -c "$conf" -i 0
  wait_for "the OSD to be up" osd.0 osd_is_up

  # Gateway pools, created up front so radosgw need not create them one by one.
  create_pools

  # Gateway.
  local port saved
  saved="$(gateway_port || true)"
  if pid_alive "$rgw_name" && [[ "$want_port" != 0 && "$want_port" != "$saved" ]]; then
    stop_daemons "$rgw_name"
  fi
  if pid_alive "$rgw_name"; then
    port="$saved"
  else
    if [[ "$want_port" != 0 ]]; then
      port="$want_port"
    elif [[ -n "$saved" ]] && ! port_in_use "$saved"; then
      port="$saved"   # keep the endpoint stable across restarts
    else
      port="$(free_port)"
    fi
    port_in_use "$port" && die "port 127.0.0.1:$port is already in use"
    echo "$port" >"$dir/rgw.port"
    mkdir -p "$dir/rgw-rgw.a"
    start_daemon "$rgw_name" radosgw -c "$conf" -n "$rgw_name" --rgw-frontends "beast endpoint=127.0.0.1:$port"
  fi
  wait_for "the gateway on 127.0.0.1:$port" "$rgw_name" gateway_up

  ensure_user
  ensure_bucket
  print_env
}

stop_daemons() {  # NAME...: SIGTERM by pid file, wait for all (bounded), then SIGKILL.
  local name pid pids=() names=() deadline
  for name in "$@"; do
    pid="$(pid_of "$name")" || continue
    if proc_live "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid"); names+=("$name")
    fi
  done
  deadline=$((SECONDS + timeout_s))
  local i
  for i in "${!pids[@]}"; do
    while proc_live "${pids[$i]}"; do
      if ((SECONDS >= deadline)); then
        log "${names[$i]} (pid ${pids[$i]}) did not stop in ${timeout_s}s; killing it"
        [[ -f "$dir/log/${names[$i]}.log" ]] && tail -n 10 "$dir/log/${names[$i]}.log" >&2
        kill -KILL "${pids[$i]}" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  done
  for name in "$@"; do rm -f "$dir/run/$name.pid"; done
}

stop() {
  local wipe=0
  case "${1:-}" in
    "") ;;
    --wipe) wipe=1 ;;
    *) die "usage: stop [--wipe]" ;;
  esac
  if [[ -d "$dir/run" ]]; then
    # Gateway first, the OSD before the monitor (memstore saves its data on a
    # clean shutdown and tells the monitor it is going down).
    stop_daemons "$rgw_name" mgr.x
    stop_daemons osd.0
    stop_daemons mon.a
  fi
  if ((wipe)) && [[ -d "$dir" ]]; then
    [[ -f "$conf" || ! -e "$dir" ]] || die "$dir has no ceph.conf; not wiping it"
    rm -rf "$dir"
    log "stopped; removed $dir"
  else
    log "stopped; state kept in $dir"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) shift; stop "$@" ;;
  env)
    cluster_up || die "not running (start it: bash $0 start; state dir $dir)"
    print_env
    ;;
  status)
    if cluster_up; then
      log "up on http://127.0.0.1:$(gateway_port) (state dir $dir)"
    elif [[ -f "$conf" ]]; then
      log "not running (stopped: $(down_daemons); state dir $dir)"
      exit 1
    else
      log "not running (no cluster in $dir)"
      exit 1
    fi
    ;;
  *) echo "usage: bash $0 start|stop [--wipe]|env|status" >&2; exit 2 ;;
esac
