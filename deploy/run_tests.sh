#!/usr/bin/env bash
# Builds labtrace and runs every test under CTest (the README's test command;
# CI runs it too). Installs missing Debian packages first.
#
# Usage: deploy/run_tests.sh [--sanitize]
#   --sanitize  build in build-asan with AddressSanitizer + UBSan and run the
#               tests there (the wine test is skipped: it builds its own code)
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLABTRACE_WERROR=ON)
ctest_args=(--output-on-failure -j2)
if [[ "${1:-}" == "--sanitize" ]]; then
  build=build-asan
  cmake_args+=(-DLABTRACE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  ctest_args+=(-LE windows)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
elif [[ -n "${1:-}" ]]; then
  echo "usage: $0 [--sanitize]" >&2
  exit 2
fi

bash deploy/install_deps.sh --windows-tests
cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j2
cd "$build"
ctest "${ctest_args[@]}"
