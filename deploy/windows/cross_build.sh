#!/usr/bin/env bash
# Cross-compiles all of labtrace for 64-bit Windows with mingw-w64 (posix
# threads, static): the agent, the controller, fake_wpr.exe and the Windows
# unit tests, into build-mingw/:
#   build-mingw/agent/labtrace-agent.exe
#   build-mingw/controller/labtrace.exe
#   build-mingw/tests/fake_wpr.exe, labtrace_win_tests.exe, child_helper.exe
# The dependencies (gRPC and the rest) come from the cached prefix that
# deploy/windows/build_deps.sh builds from Debian source packages, once per
# machine (about 40 minutes the first time).
#
# Usage: deploy/windows/cross_build.sh [--package]
#   --package  also make the Windows ZIP with CPack (build-mingw/*.zip)
# The tests run under wine from the Linux build's CTest (label `windows`).
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS

package=0
case "${1:-}" in
  "") ;;
  --package) package=1 ;;
  *) echo "usage: $0 [--package]" >&2; exit 2 ;;
esac

bash deploy/install_deps.sh --windows-tests
prefix="$(bash deploy/windows/build_deps.sh | tail -n 1)"
echo "== [cross] dependency prefix $prefix"

build=build-mingw
# A new prefix (its build script changed) invalidates every path CMake
# cached: start that build dir afresh.
if [[ -f "$build/CMakeCache.txt" && "$(cat "$build/.labtrace-deps" 2>/dev/null)" != "$prefix" ]]; then
  echo "== [cross] new dependency prefix: reconfiguring $build from scratch"
  rm -rf "$build"
fi
mkdir -p "$build"
echo "$prefix" >"$build/.labtrace-deps"
configure=(-S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$PWD/deploy/windows/mingw-toolchain.cmake"
  -DLABTRACE_MINGW_DEPS="$prefix" -DCMAKE_BUILD_TYPE=Release -DLABTRACE_WERROR=ON
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG")
if [[ ! -f "$build/CMakeCache.txt" ]]; then configure+=(-G Ninja); fi
cmake "${configure[@]}" >/dev/null
cmake --build "$build" -j "${LABTRACE_JOBS:-2}"
if ((package)); then
  (cd "$build" && cpack -G ZIP)
fi
echo "== [cross] built in $((SECONDS - started)) s:"
ls -la "$build/agent/labtrace-agent.exe" "$build/controller/labtrace.exe" \
  "$build/tests/fake_wpr.exe" "$build/tests/labtrace_win_tests.exe"
