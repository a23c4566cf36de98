#!/usr/bin/env bash
# egress_upload.sh: throughput of `labtrace fetch --egress` (the agent uploads
# an artifact straight to S3-compatible storage: multipart, 64 MiB parts,
# 4 parts at once, over URLs the controller presigns) against a private
# one-node Ceph RADOS Gateway (deploy/object-store/local-s3.sh) on loopback,
# compared in the same run with the usual clients uploading the same file to
# the same gateway:
#   - boto3 upload_file (path-style addressing, default TransferConfig:
#     multipart 8 MiB parts, 10 threads) [baseline]
#   - curl -T to a presigned PUT URL (one single-part PUT)
# A benchmark, not a test: it prints numbers and a ratio, and fails only if
# something breaks (setup, an upload, a size/sha256 mismatch on the store).
#
# Usage: tests/bench/egress_upload.sh [RUNS]
#   RUNS        timed runs of each side, alternating (default 3; best and
#               mean reported)
# Environment:
#   BUILD_DIR   build tree (default build/ of this checkout): needs
#               agent/labtrace-agent, controller/labtrace, tests/fake_wpr
#   SIZE_MB     artifact size in MiB (default 1024)
#   PYTHON      a python3 with boto3 (default /usr/bin/python3, which
#               local-s3.sh installs python3-boto3 for)
#
# What it does: writes SIZE_MB of random data to a temp dir, starts its own
# gateway with LABTRACE_S3_DIR under that temp dir (so another local-s3
# instance is not touched; packages are installed by local-s3.sh if missing),
# starts one agent on 127.0.0.1 port 0 whose wpr profile is tests/fake_wpr
# copying that file, and starts and stops a trace with --run-id so the file
# becomes an artifact of the run. Each run then uploads it three ways, each
# to its own key (so `fetch --egress` never skips an object already there),
# checks each object's size (and, for labtrace, its x-amz-meta-sha256), then
# deletes the objects and runs the gateway's garbage collection (the gateway
# keeps data in RAM, memstore, up to 8 GiB).
# Times are wall times of the whole operation, MB = 10^6 B: labtrace = the
# `labtrace fetch` command (bucket check, listing, presigning, the agent's
# upload, completion, manifest update); boto3 = the upload_file call in an
# already started interpreter; curl = curl's time_total.
# Wall-time numbers: on a shared machine, run it when the machine is quiet.
# Everything lives in one temp dir, removed at exit with every process the
# script started; the gateway is stopped with `stop --wipe`.
set -euo pipefail

RUNS=${1:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SIZE_MB=${SIZE_MB:-1024}
PYTHON=${PYTHON:-/usr/bin/python3}
AGENT=$BUILD_DIR/agent/labtrace-agent
CLI=$BUILD_DIR/controller/labtrace
FAKE_WPR=$BUILD_DIR/tests/fake_wpr
LOCAL_S3=$ROOT/deploy/object-store/local-s3.sh

die() { echo "egress_upload: $*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer"
for b in "$AGENT" "$CLI" "$FAKE_WPR"; do
  [[ -x $b ]] || die "missing $b (build first: cmake --build $BUILD_DIR)"
done
[[ -f $LOCAL_S3 ]] || die "missing $LOCAL_S3"
command -v curl >/dev/null || die "need curl"

TMP=$(mktemp -d /tmp/labtrace-bench-egress.XXXXXX)
AGENT_PID=
S3_STARTED=0
# A private gateway: own state dir, a free port, own bucket name.
export LABTRACE_S3_DIR=$TMP/s3
export LABTRACE_S3_PORT=0
export LABTRACE_S3_BUCKET=labtrace-bench
unset AWS_ENDPOINT_URL AWS_PROFILE AWS_SESSION_TOKEN

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
  [[ -n $AGENT_PID ]] && stop_pid "$AGENT_PID"
  if [[ $rc != 0 ]]; then
    for f in "$TMP/agent.log" "$TMP/cli.err"; do
      [[ -s $f ]] && { echo "--- tail of $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  if ((S3_STARTED)); then
    timeout 120 bash "$LOCAL_S3" stop --wipe >/dev/null 2>&1 ||
      echo "egress_upload: warning: local-s3 stop --wipe failed ($LABTRACE_S3_DIR)" >&2
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

# --- the object store ------------------------------------------------------
echo "starting a private local S3 in $LABTRACE_S3_DIR" >&2
S3_STARTED=1
LABTRACE_S3_TIMEOUT=60 timeout 900 bash "$LOCAL_S3" start >"$TMP/s3.env" 2>"$TMP/s3.err" ||
  { cat "$TMP/s3.err" >&2; die "local-s3.sh start failed"; }
eval "$(timeout 30 bash "$LOCAL_S3" env)"
BUCKET=$LABTRACE_S3_BUCKET
"$PYTHON" -c 'import boto3' 2>/dev/null || die "$PYTHON has no boto3 (apt-get install python3-boto3)"

# --- the artifact ----------------------------------------------------------
echo "writing ${SIZE_MB} MiB of random data" >&2
mkdir -p "$TMP/state" "$TMP/data"
timeout 300 head -c "$((SIZE_MB << 20))" /dev/urandom >"$TMP/source.etl"
SIZE=$(stat -c %s "$TMP/source.etl")
[[ $SIZE == $((SIZE_MB << 20)) ]] || die "short source file ($SIZE bytes)"
SHA=$(sha256sum "$TMP/source.etl" | cut -d' ' -f1)

cat >"$TMP/agent.yaml" <<EOF
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
  "$AGENT" --config "$TMP/agent.yaml" --listen 127.0.0.1:0 --rest-listen off \
  --data-dir "$TMP/data" --port-file "$TMP/port" >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
wait_for "the agent's port file" 15 test -s "$TMP/port"
printf 'hosts:\n  - {name: h1, address: "127.0.0.1:%s"}\n' "$(head -n1 "$TMP/port")" \
  >"$TMP/inventory.yaml"
export LABTRACE_INVENTORY=$TMP/inventory.yaml

RUN_ID=egress-bench
timeout 60 "$CLI" start bench_egress --profile bench --run-id "$RUN_ID" \
  --timeout 30s >/dev/null 2>"$TMP/cli.err" || die "labtrace start failed"
timeout 330 "$CLI" stop bench_egress --timeout 300s >/dev/null 2>"$TMP/cli.err" ||
  die "labtrace stop failed"
rm -f "$TMP/source.etl" # the artifact is the copy; one file in the page cache
ART=$(find "$TMP/data/artifacts" -type f ! -name '*.json' -size +$((SIZE_MB - 1))M | head -n1)
[[ -n $ART && $(stat -c %s "$ART") == "$SIZE" ]] || die "no artifact of $SIZE bytes in $TMP/data/artifacts"

# --- helpers in python (boto3) -----------------------------------------------
cat >"$TMP/s3.py" <<'PY'
import os, sys, time
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}))
cmd, bucket = sys.argv[1], sys.argv[2]
if cmd == "upload":              # upload FILE KEY: print seconds
    f, key = sys.argv[3], sys.argv[4]
    t0 = time.perf_counter()
    s3.upload_file(f, bucket, key)  # default TransferConfig
    print(f"{time.perf_counter() - t0:.6f}")
elif cmd == "presign":           # presign KEY: print a PUT URL
    print(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": sys.argv[3]},
                                    ExpiresIn=3600))
elif cmd == "head":              # head KEY: print size and x-amz-meta-sha256
    h = s3.head_object(Bucket=bucket, Key=sys.argv[3])
    print(h["ContentLength"], h.get("Metadata", {}).get("sha256", "-"))
elif cmd == "purge":             # purge: delete every object in the bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=o["Key"])
PY
s3py() { timeout 900 "$PYTHON" "$TMP/s3.py" "$1" "$BUCKET" "${@:2}"; }

# check_object KEY [SHA]: size (and the x-amz-meta-sha256) on the store.
check_object() {
  local out
  out=$(s3py head "$1") || die "HEAD $1 failed"
  [[ ${out%% *} == "$SIZE" ]] || die "object $1 has ${out%% *} bytes, want $SIZE"
  [[ -z ${2:-} || ${out#* } == "$2" ]] || die "object $1 has sha256 ${out#* }, want $2"
}
# Free the gateway's RAM: delete the objects, then collect the garbage now
# (radosgw otherwise frees deleted data hours later).
purge() {
  s3py purge || die "deleting the objects failed"
  timeout 300 radosgw-admin -c "$LABTRACE_S3_DIR/ceph.conf" gc process --include-all \
    >/dev/null 2>&1 || echo "egress_upload: warning: radosgw-admin gc process failed" >&2
}
mbps() { awk -v b="$SIZE" -v t="$1" 'BEGIN { printf "%.1f\n", b / t / 1e6 }'; }

# Each prints MB/s.
run_labtrace() { # PREFIX
  local t0 t1 out url
  t0=$(date +%s.%N)
  out=$(timeout 900 "$CLI" fetch --run "$RUN_ID" --egress "s3://$BUCKET/$1" \
    --timeout 850s --json 2>"$TMP/cli.err") || die "labtrace fetch --egress failed: $out"
  t1=$(date +%s.%N)
  grep -q '"status": "uploaded"' <<<"$out" || die "labtrace fetch: nothing uploaded: $out"
  url=$(grep -o "\"s3://$BUCKET/$1/$RUN_ID/h1/[^\"]*\"" <<<"$out" | head -n1 | tr -d '"')
  [[ -n $url ]] || die "labtrace fetch: no object URL in its output: $out"
  check_object "${url#s3://"$BUCKET"/}" "$SHA"
  mbps "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
}
run_boto3() { # KEY
  local secs
  secs=$(s3py upload "$ART" "$1") || die "boto3 upload_file failed"
  check_object "$1"
  mbps "$secs"
}
run_curl() { # KEY
  local url out code secs
  url=$(s3py presign "$1") || die "presigning failed"
  out=$(curl -sS --max-time 900 -o "$TMP/curl.body" -w '%{http_code} %{time_total}' \
    -T "$ART" "$url") || die "curl -T failed"
  read -r code secs <<<"$out"
  [[ $code == 200 ]] || die "curl -T: HTTP $code: $(head -c 300 "$TMP/curl.body")"
  check_object "$1"
  mbps "$secs"
}
stats() { # VALUE...: best mean
  printf '%s\n' "$@" | awk 'NR == 1 || $1 > m { m = $1 } { s += $1 }
    END { printf "%.1f %.1f\n", m, s / NR }'
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
L=() B=() C=()
for ((r = 1; r <= RUNS; r++)); do
  L+=("$(run_labtrace "bench/r$r")")
  B+=("$(run_boto3 "boto3/r$r/${ART##*/}")")
  C+=("$(run_curl "curl/r$r/${ART##*/}")")
  purge
  echo "run $r: labtrace ${L[-1]}, boto3 ${B[-1]}, curl ${C[-1]} MB/s" >&2
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
read -r LBEST LMEAN <<<"$(stats "${L[@]}")"
read -r BBEST BMEAN <<<"$(stats "${B[@]}")"
read -r CBEST CMEAN <<<"$(stats "${C[@]}")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

row() { printf '%-58s %7s %7s   %s\n' "$@"; }
echo
echo "Egress upload throughput: ${SIZE_MB} MiB artifact to a local Ceph RGW (memstore) over loopback, $RUNS runs each (alternating), MB = 10^6 B"
echo "host: $(nproc) CPUs, $(uname -sr), loadavg $LOAD0 -> $LOAD1"
row "" "best" "mean" "runs (MB/s)"
row "labtrace fetch --egress (agent: 64 MiB parts, 4 at once)" "$LBEST" "$LMEAN" "${L[*]}"
row "boto3 $("$PYTHON" -c 'import boto3; print(boto3.__version__)') upload_file (8 MiB parts, 10 threads) [baseline]" "$BBEST" "$BMEAN" "${B[*]}"
row "curl -T to a presigned PUT URL (single PUT)" "$CBEST" "$CMEAN" "${C[*]}"
echo "RATIO labtrace/curl = $(ratio "$LMEAN" "$CMEAN") (mean)"
echo "RATIO labtrace/boto3 = $(ratio "$LBEST" "$BBEST") (best), $(ratio "$LMEAN" "$BMEAN") (mean)"
