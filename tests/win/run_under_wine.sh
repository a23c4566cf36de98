#!/usr/bin/env bash
# Runs an executable of the Windows cross build (deploy/windows/
# cross_build.sh) under wine, for CTest. Exits with the program's status, or
# 77 (CTest: skipped) with the reason when wine or the executable is missing.
#
# Usage: tests/win/run_under_wine.sh EXE [ARGS...]
# Environment: LABTRACE_WINE_PREFIX (default ~/.cache/labtrace/wineprefix),
# created on first use (wineboot, about 20 s) and shared by later runs.
set -euo pipefail

exe="$1"
shift
if [[ ! -f "$exe" ]]; then
  echo "SKIP: $exe is not built (bash deploy/windows/cross_build.sh builds it)"
  exit 77
fi
wine=""
for candidate in wine64 /usr/lib/wine/wine64 wine; do
  if command -v "$candidate" >/dev/null 2>&1; then
    wine="$(command -v "$candidate")"
    break
  fi
done
if [[ -z "$wine" ]]; then
  echo "SKIP: wine is not installed (bash deploy/install_deps.sh --windows-tests)"
  exit 77
fi

export WINEPREFIX="${LABTRACE_WINE_PREFIX:-$HOME/.cache/labtrace/wineprefix}"
export WINEARCH=win64
export WINEDEBUG=-all
# No Mono/Gecko install prompts (nothing can be downloaded here anyway).
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY

# One wineboot per prefix, even when CTest runs tests in parallel.
mkdir -p "$(dirname "$WINEPREFIX")"
exec 9>"$WINEPREFIX.lock"
flock 9
if [[ ! -f "$WINEPREFIX/system.reg" ]]; then
  echo "== creating the wine prefix $WINEPREFIX"
  if ! timeout 300 "$wine" wineboot -i >"$WINEPREFIX.boot.log" 2>&1; then
    cat "$WINEPREFIX.boot.log"
    exit 1
  fi
  timeout 120 wineserver -w || true
fi
flock -u 9
exec 9>&-

# stdin and stdout are not terminals, so the program has no console (what
# the subprocess tests of CTRL_BREAK expect under wine).
echo "== $wine $exe $*"
set +e
timeout 1200 "$wine" "$exe" "$@" </dev/null 2>&1 | cat
status=${PIPESTATUS[0]}
set -e
echo "== exit status $status"
exit "$status"
