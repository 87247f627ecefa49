#!/usr/bin/env bash
# `make run`: install what is missing, build a release, create ./var on first
# use, and run one node in the foreground. Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh release
bash deploy/dev-setup.sh
echo "stanzad: starting with var/stanzad.yaml (Ctrl-C stops)"
exec build/release/stanzad --config var/stanzad.yaml
