#!/usr/bin/env bash
# Creates the development setup under ./var on first use: a self-signed
# certificate for localhost, the config file and the data directory.
# Existing files are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var/tls var/data var/log
if [ ! -f var/tls/localhost.pem ] || [ ! -f var/tls/localhost.key ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -keyout var/tls/localhost.key -out var/tls/localhost.pem 2>/dev/null
    chmod 600 var/tls/localhost.key
    echo "dev-setup: created var/tls/localhost.pem (self-signed)"
fi
if [ ! -f var/stanzad.yaml ]; then
    cp deploy/stanzad.dev.yaml var/stanzad.yaml
    echo "dev-setup: created var/stanzad.yaml"
fi
