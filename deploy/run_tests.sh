#!/usr/bin/env bash
# Builds labtrace and runs every test under CTest (the README's test command;
# CI runs it too). Installs missing Debian packages first.
#
# Usage: deploy/run_tests.sh [--sanitize] [--no-windows]
#   (no flag)     the Linux build (build/), the Windows cross build
#                 (build-mingw/, deploy/windows/cross_build.sh: the first time
#                 on a machine it also builds the cached dependency prefix,
#                 about 40 minutes) and CTest, whose `windows` tests run the
#                 Windows agent and unit tests under wine.
#   --no-windows  skip the cross build; the `windows` tests are then reported
#                 as skipped, with the reason.
#   --sanitize    build in build-asan with clang, AddressSanitizer + UBSan
#                 and -Wthread-safety (Abseil's lock annotations checked; as
#                 errors), and run the tests there (not the `windows` ones:
#                 they run .exe files).
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLABTRACE_WERROR=ON)
ctest_args=(--output-on-failure -j2)
windows=1
deps_args=(--windows-tests)
for arg in "$@"; do
  case "$arg" in
    --sanitize)
      build=build-asan
      cmake_args+=(-DLABTRACE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
        -DCMAKE_CXX_COMPILER=clang++)
      deps_args+=(--clang)
      ctest_args+=(-LE windows)
      windows=0
      export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
      export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
      export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
      ;;
    --no-windows) windows=0 ;;
    *)
      echo "usage: $0 [--sanitize] [--no-windows]" >&2
      exit 2
      ;;
  esac
done

bash deploy/install_deps.sh "${deps_args[@]}"
started=$SECONDS
cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j2
echo "== Linux build: $((SECONDS - started)) s"
if ((windows)); then
  started=$SECONDS
  bash deploy/windows/cross_build.sh
  echo "== Windows cross build: $((SECONDS - started)) s"
fi
cd "$build"
ctest "${ctest_args[@]}"
