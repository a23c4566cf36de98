#!/usr/bin/env bash
# Benchmark: the ETL summary (`labtrace inspect`) on a 1 GiB .etl file, as a
# ratio against `cat FILE > /dev/null` in the same run (both from the page
# cache after a first read), plus the parser's peak RSS (bounded memory).
# With root, also once from a cold page cache (disk speed).
# The file is the real airbus_ShutdownPerfDiagLogger.etl (49 buffers of
# 64 KiB, 17,078 records) with its data buffers repeated up to SIZE_MB.
#
# Usage: tests/bench/etl_parse.sh [SIZE_MB] [ROUNDS]   (default 1024 3)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
size_mb="${1:-1024}"
rounds="${2:-3}"
src="$root/../shared/testdata/etl/airbus_ShutdownPerfDiagLogger.etl"
cli="$build/controller/labtrace"
[[ -x "$cli" && -f "$src" ]] || { echo "need $cli and $src" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || apt-get install -y -q time >/dev/null

work="$(mktemp -d /tmp/labtrace-bench-etl.XXXXXX)"
trap 'rm -rf "$work"' EXIT
big="$work/big.etl"
# Header buffer (64 KiB), then the 48 data buffers over and over.
head -c 65536 "$src" >"$big"
tail -c +65537 "$src" >"$work/data"
target=$((size_mb * 1024 * 1024))
while (( $(stat -c %s "$big") + $(stat -c %s "$work/data") <= target )); do
  cat "$work/data" >>"$big"
done
bytes=$(stat -c %s "$big")
echo "file: $(numfmt --to=iec "$bytes") ($bytes bytes)"

now() { date +%s.%N; }
cat "$big" >/dev/null  # Warm the page cache for both.
c=()
p=()
for r in $(seq 1 "$rounds"); do
  t0=$(now); cat "$big" >/dev/null; t1=$(now)
  c+=("$(echo "$t1 - $t0" | bc -l)")
  t0=$(now)
  /usr/bin/time -f "%M" -o "$work/rss" "$cli" inspect "$big" --json >"$work/out.json" || true
  t1=$(now)
  p+=("$(echo "$t1 - $t0" | bc -l)")
done
# Cold cache (from disk), if this machine lets us drop the page cache.
cold_c=""; cold_p=""
if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
  t0=$(now); cat "$big" >/dev/null; t1=$(now); cold_c=$(echo "$t1 - $t0" | bc -l)
  sync; echo 3 >/proc/sys/vm/drop_caches
  t0=$(now); "$cli" inspect "$big" --json >/dev/null || true; t1=$(now); cold_p=$(echo "$t1 - $t0" | bc -l)
fi
grep -q '"buffers_found"' "$work/out.json" || { echo "inspect failed: $(cat "$work/out.json")" >&2; exit 1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cm=$(median "${c[@]}")
pm=$(median "${p[@]}")
mbs() { echo "$bytes / $1 / 1000000" | bc -l; }
printf '\nETL summary of %s, %d rounds (median), MB = 10^6 B\n' "$(numfmt --to=iec "$bytes")" "$rounds"
printf '  cat FILE > /dev/null:   %7.3f s  %8.1f MB/s  [%s]\n' "$cm" "$(mbs "$cm")" "${c[*]}"
printf '  labtrace inspect FILE:  %7.3f s  %8.1f MB/s  [%s]\n' "$pm" "$(mbs "$pm")" "${p[*]}"
printf '  inspect peak RSS: %s KiB\n' "$(cat "$work/rss")"
if [[ -n "$cold_c" ]]; then
  printf '  cold cache: cat %.3f s (%.1f MB/s), inspect %.3f s (%.1f MB/s), ratio %.3f\n' \
    "$cold_c" "$(mbs "$cold_c")" "$cold_p" "$(mbs "$cold_p")" "$(echo "$cold_c / $cold_p" | bc -l)"
else
  printf '  cold cache: not measured (cannot drop the page cache here)\n'
fi
grep -E '"(record_count|buffers_found|events_lost)"' "$work/out.json" | tr -s ' ' | sed 's/^/ /'
printf 'RATIO inspect/cat throughput = %.3f\n' "$(echo "$cm / $pm" | bc -l)"
