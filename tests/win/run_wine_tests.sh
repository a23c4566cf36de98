#!/usr/bin/env bash
# Cross-compiles the Windows subprocess layer (common/subprocess_win.cc) and
# its tests with mingw-w64, then runs the tests under wine on Linux.
# Installs missing Debian packages, is safe to run again, and exits non-zero
# if the build or any test fails.
#
# Usage: tests/win/run_wine_tests.sh [BUILD_DIR]   (default /tmp/labtrace-win-build)
# With LABTRACE_WINE_NO_INSTALL=1 (as CTest runs it) missing tools make it
# exit 77, which CTest reports as skipped.
set -euo pipefail

build_dir="$(mkdir -p "${1:-/tmp/labtrace-win-build}" && cd "${1:-/tmp/labtrace-win-build}" && pwd)"
src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=$SECONDS

say() { echo "== $*"; }

# ---- Tools ----------------------------------------------------------------
packages=(cmake g++-mingw-w64-x86-64-posix wine wine64 libgtest-dev)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
      grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} > 0)) && [[ "${LABTRACE_WINE_NO_INSTALL:-0}" == 1 ]]; then
  # Under CTest: skip (exit 77) rather than install.
  echo "SKIP: missing ${missing[*]} (deploy/install_deps.sh --windows-tests installs them)"
  exit 77
fi
if ((${#missing[@]} > 0)); then
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then sudo=(sudo); fi
  say "installing ${missing[*]}"
  timeout 600 "${sudo[@]}" apt-get update
  timeout 1800 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y "${missing[@]}"
fi

wine=""
for candidate in wine64 /usr/lib/wine/wine64 wine; do
  if command -v "$candidate" >/dev/null 2>&1; then
    wine="$(command -v "$candidate")"
    break
  fi
done
if [[ -z "$wine" ]]; then
  echo "no wine64 binary found" >&2
  exit 1
fi
wineserver="$(command -v wineserver64 || command -v /usr/lib/wine/wineserver64 ||
  command -v wineserver || true)"

# ---- Build ----------------------------------------------------------------
configure=(-S "$src_dir" -B "$build_dir"
  -DCMAKE_TOOLCHAIN_FILE="$src_dir/mingw-toolchain.cmake")
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null; then
  configure+=(-G Ninja)
fi
say "configuring in $build_dir"
timeout 300 cmake "${configure[@]}" >"$build_dir/configure.log" 2>&1 || {
  cat "$build_dir/configure.log"
  exit 1
}
say "building"
timeout 1200 cmake --build "$build_dir" --parallel "$(nproc)"

# ---- Wine -----------------------------------------------------------------
export WINEPREFIX="$build_dir/wineprefix"
export WINEARCH=win64
export WINEDEBUG=-all
# No Mono/Gecko install prompts (nothing can be downloaded here anyway).
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
cleanup() {
  if [[ -n "$wineserver" ]]; then
    timeout 30 "$wineserver" -k >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if [[ ! -f "$WINEPREFIX/system.reg" ]]; then
  say "creating wine prefix $WINEPREFIX"
  timeout 300 "$wine" wineboot -i >"$build_dir/wineboot.log" 2>&1 || {
    cat "$build_dir/wineboot.log"
    exit 1
  }
  timeout 120 "$wineserver" -w || true
fi

# ---- Test -----------------------------------------------------------------
# stdin and stdout are not terminals, so the test process has no console
# (the configuration ProcessTest.InterruptSendsCtrlBreak* expects under wine).
say "running subprocess_win_test.exe under $wine"
set +e
timeout 600 "$wine" "$build_dir/bin/subprocess_win_test.exe" --gtest_color=no \
  </dev/null 2>&1 | cat
status=${PIPESTATUS[0]}
set -e
say "exit status $status after $((SECONDS - started)) s"
exit "$status"
