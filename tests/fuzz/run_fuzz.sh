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

bash "$root/deploy/install_deps.sh" --clang

# The fuzz targets build with the project's own CMake files (tests/fuzz/
# CMakeLists.txt), everything instrumented; only their dependencies build.
build="${FUZZ_BUILD:-$root/build-fuzz}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DLABTRACE_FUZZ=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
cmake --build "$build" -j "${LABTRACE_JOBS:-2}" --target etl_fuzz request_fuzz
cp "$build/tests/fuzz/etl_fuzz" "$build/tests/fuzz/request_fuzz" "$work/"

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
