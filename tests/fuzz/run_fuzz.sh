#!/usr/bin/env bash
# Fuzzes the ETL / perf.data parsers (common/etl, common/perf_data) with
# libFuzzer under AddressSanitizer + UBSan for a bounded time, seeded with the
# real files in ../shared/testdata/etl. Exits non-zero on a crash, a hang
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

seeds="$root/../shared/testdata/etl"
[[ -d "$seeds" ]] && cp -n "$seeds"/*.etl "$work/corpus/" 2>/dev/null || true
# A perf.data seed, if a build left one around, helps the perf path.
find "$root/build" -name '*.perf.data' -size -2M 2>/dev/null | head -n 2 |
  xargs -r -I{} cp -n {} "$work/corpus/" || true

echo "fuzzing for ${seconds}s (corpus: $(ls "$work/corpus" | wc -l) files)"
cd "$work"
"$work/etl_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=4194304 -print_final_stats=1 corpus 2>&1 | tail -n 25
