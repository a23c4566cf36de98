#!/usr/bin/env bash
# Installs what labtrace needs to build and test on Debian 12 (bookworm).
# Safe to run again: apt is only called when a package is missing.
# The Ceph packages and boto3 are for the object-store tests (label s3: a
# one-node RADOS Gateway, deploy/object-store/local-s3.sh).
#
# Usage: deploy/install_deps.sh [--windows-tests] [--bench] [--clang]
#   --windows-tests  also mingw-w64, wine and what deploy/windows/build_deps.sh
#                    needs to build the Windows dependency prefix
#   --bench          also nginx (tests/bench baselines)
#   --clang          also clang and its sanitizer runtimes (the sanitizer
#                    build, the fuzzers)
set -euo pipefail

packages=(build-essential cmake pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libgtest-dev libgmock-dev libyaml-cpp-dev libssl-dev
  nlohmann-json3-dev libboost-dev libzstd-dev libcurl4-openssl-dev
  linux-perf curl openssl python3-grpcio python3-grpc-tools
  ceph-mon ceph-mgr ceph-osd radosgw ceph-common python3-boto3
  python3-jsonschema python3-lxml)
for arg in "$@"; do
  case "$arg" in
    --windows-tests)
      packages+=(g++-mingw-w64-x86-64-posix wine wine64 ninja-build dpkg-dev
        unicode-data xz-utils)
      ;;
    --bench) packages+=(nginx-light) ;;
    --clang) packages+=(clang libclang-rt-14-dev) ;;
    *) echo "usage: $0 [--windows-tests] [--bench] [--clang]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
sudo=()
[[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
echo "installing: ${missing[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
