#!/usr/bin/env bash
# Installs the Debian packages stanzad needs (and, with --test, what its test
# suites need). Non-interactive; runs apt-get update at most once, and only
# when something is missing. Uses sudo when not root.
set -euo pipefail

pkgs=(meson ninja-build pkg-config gcc make liburing-dev libjemalloc-dev libhiredis-dev
      libck-dev libyaml-dev libsqlite3-dev libutf8proc-dev android-libboringssl-dev openssl)
if [ "${1:-}" = "--test" ]; then
    pkgs+=(clang libclang-rt-14-dev libexpat1-dev python3 python3-pytest python3-slixmpp
           redis-server python3-yaml)
fi

missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
