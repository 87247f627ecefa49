#!/usr/bin/env bash
# Installs the Debian packages stanzad needs (and, with --test, what its test
# suites need). Non-interactive; runs apt-get update at most once, and only
# when something is missing. Uses sudo when not root. Waits up to 10 minutes
# for another apt/dpkg run to release its lock.
#
# --test also installs the XMPP client libraries that tests/integ/test_clients.py
# logs in with: slixmpp and aioxmpp (Debian's python3-*), libstrophe-dev (the
# probe in tests/integ/clients is built when pkg-config finds it), go-sendxmpp,
# and xmpp.js from the npm registry at the version pinned in
# tests/integ/clients/js/package-lock.json (npm ci --ignore-scripts, into that
# folder's node_modules). Node.js and npm come with the machine image; when
# they are missing, Debian's nodejs and npm are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

test=false
[ "${1:-}" = "--test" ] && test=true

pkgs=(meson ninja-build pkg-config gcc make liburing-dev libjemalloc-dev libhiredis-dev
      libck-dev libyaml-dev libsqlite3-dev libutf8proc-dev android-libboringssl-dev openssl)
if $test; then
    pkgs+=(clang libclang-rt-14-dev libexpat1-dev python3 python3-pytest python3-slixmpp
           redis-server python3-yaml python3-aioxmpp libstrophe-dev go-sendxmpp)
    # Checked by command, not by package: the image's Node.js is not
    # Debian's, and Debian's npm would conflict with it.
    command -v node >/dev/null || pkgs+=(nodejs)
    command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    apt=(apt-get -o DPkg::Lock::Timeout=600)
    $sudo "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive $sudo "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null
fi

# xmpp.js: exactly the versions of the committed package-lock.json, no
# install scripts. Skipped when node_modules is newer than the lock file.
if $test; then
    js=tests/integ/clients/js
    if [ ! -f "$js/node_modules/.package-lock.json" ] ||
       [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
        echo "install-deps: npm ci in $js" >&2
        (cd "$js" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
