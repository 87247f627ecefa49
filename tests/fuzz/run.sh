#!/usr/bin/env bash
# run.sh FUZZER SEED_DIR: runs a libFuzzer target for SZ_FUZZ_SECONDS
# (default 60) starting from SEED_DIR; exits non-zero on any crash, leak or
# sanitizer report (libFuzzer's default crash code, 77, would read as
# "skipped" to meson, so every failure exits 1). Crashing inputs are kept in ./fuzz-artifacts (the
# build directory under meson); new corpus entries go to a scratch dir.
set -euo pipefail
fuzzer=$1 seeds=$2
secs=${SZ_FUZZ_SECONDS:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p fuzz-artifacts
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -error_exitcode=1 -timeout_exitcode=1 -oom_exitcode=1 \
    -artifact_prefix="$PWD/fuzz-artifacts/" "$work" "$seeds"
