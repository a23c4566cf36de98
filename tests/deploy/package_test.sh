#!/usr/bin/env bash
# Builds the packages with CPack into a temp dir and checks what they hold:
# the Linux .deb (from the Linux build) and the Windows ZIP (from the cross
# build, skipped if there is none). For CTest (label `package`).
#
# Usage: tests/deploy/package_test.sh LINUX_BUILD_DIR MINGW_BUILD_DIR
set -euo pipefail
linux_build="$1"
mingw_build="$2"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

(cd "$linux_build" && cpack -G DEB -B "$out/deb" >"$out/deb.log" 2>&1) ||
  { cat "$out/deb.log"; fail "cpack -G DEB"; }
deb="$(ls "$out"/deb/labtrace_*_amd64.deb)"
contents="$(dpkg-deb -c "$deb")"
for f in ./usr/bin/labtrace-agent ./usr/bin/labtrace \
  ./usr/lib/systemd/system/labtrace-agent.service \
  ./usr/share/doc/labtrace/agent.example.yaml; do
  grep -qF "$f" <<<"$contents" || fail "$deb lacks $f"
done
info="$(dpkg-deb -I "$deb")"
grep -q "Depends: .*libgrpc" <<<"$info" || fail "no dependencies"
mkdir "$out/x"
dpkg-deb -x "$deb" "$out/x"
grep -q '^ExecStart=/usr/bin/labtrace-agent ' \
  "$out/x/usr/lib/systemd/system/labtrace-agent.service" || fail "unit path"
version="$("$out/x/usr/bin/labtrace-agent" --version)"
grep -q labtrace-agent <<<"$version" ||
  fail "packaged agent does not run"
echo "ok: $(basename "$deb") ($(stat -c %s "$deb") bytes)"

if [[ ! -f "$mingw_build/CMakeCache.txt" ]]; then
  echo "SKIP: no Windows cross build in $mingw_build (bash deploy/windows/cross_build.sh)"
  exit 77
fi
(cd "$mingw_build" && cpack -G ZIP -B "$out/zip" >"$out/zip.log" 2>&1) ||
  { cat "$out/zip.log"; fail "cpack -G ZIP"; }
zip="$(ls "$out"/zip/labtrace-*-windows-x64.zip)"
listing="$(unzip -l "$zip")"
for f in bin/labtrace-agent.exe bin/labtrace.exe agent.yaml install-agent.ps1 \
  labtrace.wprp windows-lab.yaml; do
  grep -qF "$f" <<<"$listing" || fail "$zip lacks $f"
done
echo "ok: $(basename "$zip") ($(stat -c %s "$zip") bytes)"
