#!/usr/bin/env bash
# Builds the Windows (mingw-w64, x86_64, posix threads, static) dependency
# prefix of labtrace from Debian's own source packages, once per machine.
#
# Usage: deploy/windows/build_deps.sh [--print-prefix]
#   Prints the prefix directory on its last line of output (with
#   --print-prefix: only that line, and fails if the prefix is not built yet).
#
# Cache: ${LABTRACE_DEPS_CACHE:-$HOME/.cache/labtrace}/mingw-<key>, where
# <key> is a hash of this script and the toolchain file. A machine pays for
# the prefix once (about 40 minutes on 2 cores, almost all of it gRPC); every
# later call returns at once. Each package is also kept on its own under
# pkgs/<name>-<key>, its key chained over the packages before it, so editing
# the recipe of a late (cheap) package rebuilds only that one and those after it.
#
# Sources: `apt-get source` of pinned versions of the archive this machine
# already uses (a deb-src entry is added for it). Versions are pinned because
# the security archive may list a version whose files are gone. Header-only
# nlohmann-json is installed from its source package too; Boost (Beast and
# Asio, header-only) from the headers of Debian's libboost1.74-dev, which are
# the source package's own files (its source is 100 MB for headers we copy).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
toolchain="$here/mingw-toolchain.cmake"
cache="${LABTRACE_DEPS_CACHE:-$HOME/.cache/labtrace}"
jobs="${LABTRACE_JOBS:-$(nproc)}"
triple=x86_64-w64-mingw32

script_key="$(cat "${BASH_SOURCE[0]}" "$toolchain" | sha256sum | cut -c1-16)"
prefix="$cache/mingw-$script_key"

if [[ "${1:-}" == "--print-prefix" ]]; then
  [[ -f "$prefix/.complete" ]] || { echo "no prefix at $prefix" >&2; exit 1; }
  echo "$prefix"
  exit 0
elif [[ -n "${1:-}" ]]; then
  echo "usage: $0 [--print-prefix]" >&2
  exit 2
fi
if [[ -f "$prefix/.complete" ]]; then
  echo "$prefix"
  exit 0
fi

say() { echo "== [deps $(date +%H:%M:%S)] $*" >&2; }
started=$SECONDS

# ---- Host tools ------------------------------------------------------------
# protoc and grpc_cpp_plugin run on the host and must match the versions built
# here (Debian 12: protobuf 3.21.12, gRPC 1.51.1).
host_packages=(g++-mingw-w64-x86-64-posix cmake ninja-build dpkg-dev perl python3
  unicode-data protobuf-compiler protobuf-compiler-grpc make xz-utils libboost1.74-dev)
missing=()
for p in "${host_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
sudo=()
[[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
if ((${#missing[@]} > 0)); then
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}" >&2
fi

# deb-src entries for the archive this machine already uses.
src_list=/etc/apt/sources.list.d/labtrace-deb-src.sources
if ! apt-cache showsrc grpc 2>/dev/null | grep -q '^Version:'; then
  say "adding deb-src entries ($src_list)"
  {
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
      [[ -f "$f" ]] || continue
      if [[ "$f" == *.sources ]]; then
        sed -e 's/^Types: deb$/Types: deb-src/' "$f"
      else
        grep -E '^deb ' "$f" | sed -e 's/^deb /deb-src /'
      fi
    done
  } | "${sudo[@]}" tee "$src_list.tmp" >/dev/null
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    "${sudo[@]}" mv "$src_list.tmp" "$src_list"
  else
    "${sudo[@]}" mv "$src_list.tmp" /etc/apt/sources.list.d/labtrace-deb-src.list
  fi
  "${sudo[@]}" apt-get update -q >&2
fi

# ---- Helpers ---------------------------------------------------------------
mkdir -p "$cache/pkgs" "$cache/src"
work="$cache/work-$script_key"
merged="$prefix.tmp"
# Leftovers of interrupted runs (of this or earlier versions of this script).
rm -rf "$cache"/work-* "$cache"/mingw-*.tmp
mkdir -p "$merged" "$work"

# fetch SOURCE VERSION: unpacks the Debian source package (patches applied)
# into $work and cds into it.
fetch() {
  local pkg="$1" version="$2"
  local dsc="$cache/src/${pkg}_${version#*:}.dsc"
  if [[ ! -f "$dsc" ]]; then
    (cd "$cache/src" && apt-get source -q --download-only "$pkg=$version" >&2)
  fi
  rm -rf "$work/$pkg"
  dpkg-source --no-check -x "$dsc" "$work/$pkg" >/dev/null
  cd "$work/$pkg"
}

# cmake_build SRC_DIR ARGS...: configures, builds and installs into $dest.
cmake_build() {
  local src="$1"
  shift
  cmake -S "$src" -B "$work/build-$name" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DLABTRACE_MINGW_DEPS="$merged" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$dest" \
    -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
    -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=OFF -DBUILD_TESTING=OFF \
    "$@" >"$work/configure-$name.log" 2>&1 || { tail -50 "$work/configure-$name.log" >&2; return 1; }
  cmake --build "$work/build-$name" -j "$jobs" >"$work/build-$name.log" 2>&1 ||
    { tail -80 "$work/build-$name.log" >&2; return 1; }
  cmake --install "$work/build-$name" >/dev/null
}

# ---- Recipes (each installs into $dest, finds earlier ones in $merged) -----
build_zlib() {
  fetch zlib 1:1.2.13.dfsg-1
  # The dfsg tarball has no win32/ makefile; zlib is 15 C files.
  local srcs=(adler32 compress crc32 deflate gzclose gzlib gzread gzwrite infback
    inffast inflate inftrees trees uncompr zutil)
  for f in "${srcs[@]}"; do $triple-gcc-posix -O2 -c "$f.c" -o "$f.o"; done
  $triple-ar rcs libz.a "${srcs[@]/%/.o}"
  mkdir -p "$dest/include" "$dest/lib"
  cp zlib.h zconf.h "$dest/include/"
  cp libz.a "$dest/lib/"
}

build_openssl() {
  # 3.0.22 is listed by the security archive but its files are missing there.
  fetch openssl 3.0.20-1~deb12u2
  ./Configure mingw64 no-shared no-tests no-module no-dso \
    --cross-compile-prefix=$triple- --prefix="$dest" --libdir=lib \
    --openssldir="$dest/ssl" -O2 >"$work/configure-openssl.log" 2>&1
  make -j "$jobs" build_libs >"$work/build-openssl.log" 2>&1 ||
    { tail -50 "$work/build-openssl.log" >&2; return 1; }
  make install_dev >/dev/null
}

build_cares() {
  fetch c-ares 1.18.1-3
  # Debian's CVE-2021-3672/2023 backports use INADDRSZ, which only
  # nameser.h on Unix defines.
  cmake_build . -DCARES_STATIC=ON -DCARES_SHARED=OFF -DCARES_BUILD_TOOLS=OFF \
    -DCARES_BUILD_TESTS=OFF -DCMAKE_C_FLAGS="-DINADDRSZ=4"
}

build_re2() {
  fetch re2 20220601+dfsg-1
  # The dfsg tarball drops the generated Unicode tables; Debian regenerates
  # them from the unicode-data package (re2/unicode.py reads /usr/share/unicode).
  perl re2/make_perl_groups.pl >re2/perl_groups.cc
  python3 re2/make_unicode_casefold.py >re2/unicode_casefold.cc
  python3 re2/make_unicode_groups.py >re2/unicode_groups.cc
  cmake_build . -DRE2_BUILD_TESTING=OFF
}

build_abseil() {
  fetch abseil 20220623.1-1+deb12u2
  cmake_build . -DABSL_PROPAGATE_CXX_STD=ON -DABSL_ENABLE_INSTALL=ON
}

build_protobuf() {
  fetch protobuf 3.21.12-3+deb12u1
  # Only the runtime library: protoc runs on the host (same version).
  cmake_build . -Dprotobuf_BUILD_TESTS=OFF -Dprotobuf_BUILD_PROTOC_BINARIES=OFF \
    -Dprotobuf_WITH_ZLIB=OFF -Dprotobuf_BUILD_EXAMPLES=OFF
}

build_grpc() {
  fetch grpc 1.51.1-3
  # grpc_unsecure and grpc++_unsecure are about 30 % of gRPC's compile time
  # and labtrace never links them: keep them out of the build and install.
  python3 - <<'EOF'
import re
text = open("CMakeLists.txt").read()
for lib in ("grpc_unsecure", "grpc++_unsecure"):
    text, n1 = re.subn(r"\nadd_library\(%s\n" % re.escape(lib),
                       "\nadd_library(%s EXCLUDE_FROM_ALL\n" % lib, text)
    text, n2 = re.subn(r"\nif\(gRPC_INSTALL\)\n  install\(TARGETS %s EXPORT gRPCTargets\n(.*?\n)  \)\nendif\(\)\n"
                       % re.escape(lib), "\n", text, flags=re.S)
    assert n1 == 1 and n2 == 1, (lib, n1, n2)
open("CMakeLists.txt", "w").write(text)
EOF
  local plugins=()
  for p in CPP CSHARP NODE OBJECTIVE_C PHP PYTHON RUBY; do
    plugins+=("-DgRPC_BUILD_GRPC_${p}_PLUGIN=OFF")
  done
  # Codegen stays on (grpc++_reflection needs it); the plugins themselves
  # come from the host (protobuf-compiler-grpc), found by find_program. The
  # well-known .proto files come from our protobuf (no libprotoc target to
  # read them from).
  cmake_build . -DgRPC_INSTALL=ON -DgRPC_BUILD_TESTS=OFF -DgRPC_BUILD_CODEGEN=ON \
    -DgRPC_BUILD_CSHARP_EXT=OFF "${plugins[@]}" \
    -DgRPC_ZLIB_PROVIDER=package -DgRPC_CARES_PROVIDER=package \
    -DgRPC_RE2_PROVIDER=package -DgRPC_SSL_PROVIDER=package \
    -DgRPC_PROTOBUF_PROVIDER=package -DgRPC_PROTOBUF_PACKAGE_TYPE=CONFIG \
    -DgRPC_ABSL_PROVIDER=package -DOPENSSL_USE_STATIC_LIBS=ON \
    -DPROTOBUF_INCLUDE_DIRS="$merged/include" \
    -D_gRPC_PROTOBUF_PROTOC_EXECUTABLE=/usr/bin/protoc \
    -D_gRPC_CPP_PLUGIN=/usr/bin/grpc_cpp_plugin
}

build_fmt() {
  fetch fmtlib 9.1.0+ds1-2
  cmake_build . -DFMT_TEST=OFF -DFMT_DOC=OFF
}

build_spdlog() {
  fetch spdlog 1:1.10.0+ds-0.4
  # As Debian builds it (the external fmt, a compiled library), plus wide
  # file names: log files under paths outside the ANSI code page.
  cmake_build . -DSPDLOG_FMT_EXTERNAL=ON -DSPDLOG_WCHAR_FILENAMES=ON \
    -DSPDLOG_BUILD_EXAMPLE=OFF \
    -DSPDLOG_BUILD_TESTS=OFF -DSPDLOG_BUILD_BENCH=OFF -DSPDLOG_INSTALL=ON
}

build_yamlcpp() {
  fetch yaml-cpp 0.7.0+dfsg-8
  cmake_build . -DYAML_CPP_BUILD_TESTS=OFF -DYAML_CPP_BUILD_TOOLS=OFF \
    -DYAML_CPP_BUILD_CONTRIB=OFF -DYAML_BUILD_SHARED_LIBS=OFF
}

build_json() {
  fetch nlohmann-json3 3.11.2-2
  cmake_build . -DJSON_BuildTests=OFF -DJSON_Install=ON
}


build_zstd() {
  fetch libzstd 1.5.4+dfsg2-5
  cmake_build build/cmake -DZSTD_BUILD_SHARED=OFF -DZSTD_BUILD_STATIC=ON \
    -DZSTD_BUILD_PROGRAMS=OFF -DZSTD_BUILD_TESTS=OFF -DZSTD_MULTITHREAD_SUPPORT=ON
}

build_googletest() {
  fetch googletest 1.12.1-0.2
  cmake_build . -DBUILD_GMOCK=ON -DINSTALL_GTEST=ON -Dgtest_disable_pthreads=OFF
}

build_boost() {
  local version
  version="$(dpkg-query -W -f='${Version}' libboost1.74-dev)"
  [[ "$version" == 1.74.0+ds1-* ]] || {
    echo "libboost1.74-dev $version: expected 1.74.0+ds1 (Debian 12)" >&2
    exit 1
  }
  mkdir -p "$dest/include"
  cp -a /usr/include/boost "$dest/include/"
}

build_curl() {
  # The version of Debian's own curl (7.88.1-10+deb12u15 is in the point
  # release; the security archive lists an older one). Its last two patches
  # (90_gnutls, 99_nss) only rename the library in the Makefile.am files, which
  # the CMake build does not read.
  fetch curl 7.88.1-10+deb12u15
  # Static libcurl over the prefix's OpenSSL and zlib, nothing else: no curl
  # tool, LDAP, SSH, IDN, PSL, HTTP/2, brotli or zstd. No CA bundle or path
  # (auto-detection would bake in the build host's /etc/ssl paths): callers
  # pass CURLOPT_CAINFO or CURLSSLOPT_NATIVE_CA. Nor does libcurl load the
  # OpenSSL config file from OPENSSLDIR (a build host path on Windows).
  cmake_build . -DBUILD_CURL_EXE=OFF -DENABLE_MANUAL=OFF -DPICKY_COMPILER=OFF \
    -DCURL_USE_OPENSSL=ON -DCURL_USE_SCHANNEL=OFF -DOPENSSL_USE_STATIC_LIBS=ON \
    -DOPENSSL_ROOT_DIR="$merged" -DCURL_DISABLE_OPENSSL_AUTO_LOAD_CONFIG=ON \
    -DCURL_ZLIB=ON -DCURL_BROTLI=OFF -DCURL_ZSTD=OFF -DUSE_NGHTTP2=OFF \
    -DCURL_DISABLE_LDAP=ON -DCURL_DISABLE_LDAPS=ON -DCURL_USE_LIBSSH2=OFF \
    -DCURL_USE_LIBSSH=OFF -DUSE_LIBIDN2=OFF -DCURL_USE_LIBPSL=OFF \
    -DENABLE_ARES=OFF -DCURL_CA_BUNDLE=none -DCURL_CA_PATH=none
  # curl-config is a shell script holding this package's build paths.
  rm -f "$dest/bin/curl-config"
  rmdir "$dest/bin" 2>/dev/null || true
}

# Order matters: a package's key covers every recipe before it.
packages=(zlib openssl cares re2 abseil protobuf grpc
  fmt spdlog yamlcpp json zstd googletest boost curl)

# ---- Build -----------------------------------------------------------------
# The chain starts from what every recipe uses: the helpers and the
# toolchain file.
chain="$( (declare -f fetch cmake_build; cat "$toolchain") | sha256sum)"
for name in "${packages[@]}"; do
  chain="$(printf '%s\n%s' "$chain" "$(declare -f "build_$name")" | sha256sum | cut -c1-16)"
  dest="$cache/pkgs/$name-$chain"
  if [[ ! -f "$dest/.complete" ]]; then
    say "building $name"
    t0=$SECONDS
    rm -rf "$dest"
    (build_"$name")
    # Release builds carry no debug info; strip what the packages add anyway.
    find "$dest" -name '*.a' -exec $triple-strip --strip-debug {} + 2>/dev/null || true
    touch "$dest/.complete"
    say "$name built in $((SECONDS - t0)) s"
    rm -rf "$work/build-$name"
  fi
  cp -a "$dest/." "$merged/"
done
# CMake config files record the install dirs of the packages (and of this
# merged prefix while it was being built); point them at the final prefix.
relocate='s#'"$cache"'/(pkgs/[a-z]+-[0-9a-f]{16}|mingw-[0-9a-f]{16}\.tmp)#'"$prefix"'#g'
# Text files only: binaries (libcrypto.a holds its OPENSSLDIR) must not be
# edited.
while read -r f; do
  [[ -n "$f" ]] && sed -i -E "$relocate" "$f"
done < <(grep -rlE --include='*.cmake' --include='*.pc' "$cache/(pkgs|mingw-)" "$merged" || true)
rm -f "$merged/.complete"
rm -rf "$prefix" "$work"
mv "$merged" "$prefix"
touch "$prefix/.complete"
# Older prefixes (earlier versions of this script) are not used any more.
for old in "$cache"/mingw-*; do
  [[ "$old" == "$prefix" || "$old" == *.lock ]] || rm -rf "$old"
done
say "prefix ready in $((SECONDS - started)) s: $prefix ($(du -sh "$prefix" | cut -f1))"
echo "$prefix"
