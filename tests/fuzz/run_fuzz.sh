#!/usr/bin/env bash
# Fuzzes, with libFuzzer under AddressSanitizer + UBSan for a bounded time:
# the ETL / perf.data parsers (common/etl, common/perf_data), seeded with the
# real files in ../shared/testdata/etl; and the agent's handling of request
# bytes (JSON bodies, names, labels, bearer tokens). Exits non-zero on a crash, a hang
# (per-input timeout) or a sanitizer report.
#
# Usage: tests/fuzz/run_fuzz.sh [SECONDS]   (default 60)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-60}"
work="${FUZZ_WORK:-/tmp/labtrace-fuzz}"
mkdir -p "$work/corpus"

if ! command -v clang++ >/dev/null || ! dpkg-query -W libclang-rt-14-dev >/dev/null 2>&1; then
  sudo=()
  [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang libclang-rt-14-dev
fi

clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I "$root" "$root/tests/fuzz/etl_fuzz.cc" "$root/common/etl/etl_summary.cc" \
  "$root/common/perf_data.cc" -o "$work/etl_fuzz"

# The request fuzzer links our protobuf messages and validation code.
mkdir -p "$work/gen"
protoc -I "$root/proto" --cpp_out="$work/gen" "$root/proto/labtrace/v1/agent.proto"
# shellcheck disable=SC2046
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I "$root" -I "$work/gen" "$root/tests/fuzz/request_fuzz.cc" "$work/gen/labtrace/v1/agent.pb.cc" \
  "$root/common/names.cc" "$root/common/file_util_posix.cc" "$root/common/time_util.cc" \
  "$root/agent/service/auth.cc" \
  $(pkg-config --cflags --libs protobuf absl_strings absl_str_format absl_time absl_status absl_statusor \
    absl_synchronization spdlog) -lcrypto -o "$work/request_fuzz"

seeds="$root/../shared/testdata/etl"
[[ -d "$seeds" ]] && cp -n "$seeds"/*.etl "$work/corpus/" 2>/dev/null || true
# A perf.data seed, if a build left one around, helps the perf path.
find "$root/build" -name '*.perf.data' -size -2M 2>/dev/null | head -n 2 |
  xargs -r -I{} cp -n {} "$work/corpus/" || true

# Half the time each: the trace file parsers, then the request handling.
half=$(( (seconds + 1) / 2 ))
echo "fuzzing the trace file parsers for ${half}s (corpus: $(ls "$work/corpus" | wc -l) files)"
cd "$work"
"$work/etl_fuzz" -max_total_time="$half" -timeout=10 -rss_limit_mb=2048 \
  -max_len=4194304 -print_final_stats=1 corpus 2>&1 | tail -n 6
mkdir -p "$work/requests"
printf '%s' '{"name": "unit_tests", "profile": "cpu", "mode": "TRACE_MODE_MEMORY", "labels": {"k": "v"}}' \
  >"$work/requests/start.json"
printf '%s' 'Bearer secret' >"$work/requests/bearer"
printf '%s' '{"trace": {"name": "s"}, "argv": ["/bin/sh", "-c", "x"], "timeout": "5s"}' \
  >"$work/requests/run.json"
echo "fuzzing request parsing and validation for ${half}s"
"$work/request_fuzz" -max_total_time="$half" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 requests 2>&1 | tail -n 6
