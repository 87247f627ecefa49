#!/usr/bin/env bash
# `make run`: install what is missing, build a release, create ./var on first
# use, and run one node in the foreground. Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh release
bash deploy/dev-setup.sh
# A demo account on first start; its password is kept in var/demo-account.txt.
if [ ! -f var/demo-account.txt ]; then
    pw=$(head -c 12 /dev/urandom | base64 | tr -d '/+=' | head -c 16)
    printf '%s\n' "$pw" > var/demo-password.tmp
    if build/release/stanzactl --config var/stanzad.yaml adduser demo@localhost \
        --password-file var/demo-password.tmp >/dev/null; then
        printf 'jid: demo@localhost\npassword: %s\n' "$pw" > var/demo-account.txt
        chmod 600 var/demo-account.txt
    fi
    rm -f var/demo-password.tmp
fi
if [ -f var/demo-account.txt ]; then
    echo "stanzad: demo account (var/demo-account.txt):"
    sed 's/^/    /' var/demo-account.txt
    echo "stanzad: log in with a desktop client (e.g. Gajim, Psi+): JID demo@localhost, that"
    echo "         password, server 127.0.0.1 port 5222 (STARTTLS; accept the self-signed"
    echo "         certificate) or port 5223 for Direct TLS. Add users with:"
    echo "         build/release/stanzactl --config var/stanzad.yaml adduser alice@localhost"
fi
echo "stanzad: starting with var/stanzad.yaml (Ctrl-C stops)"
exec build/release/stanzad --config var/stanzad.yaml
