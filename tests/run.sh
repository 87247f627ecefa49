#!/usr/bin/env bash
# `make test`: installs what is missing, builds the sanitizer and fuzz
# flavours, runs every suite, and ends with one line "N passed, N failed"
# summed over all suites (from meson's test logs).
set -uo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh --test || exit 1
bash deploy/dev-setup.sh >/dev/null || exit 1
bash deploy/build.sh debug || { echo "0 passed, 1 failed"; exit 1; }
bash deploy/build.sh fuzz || { echo "0 passed, 1 failed"; exit 1; }

# Sanitizer settings: leaks are errors; UBSan findings abort the test.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

rc=0
meson test -C build/debug --print-errorlogs --num-processes 2 || rc=1
meson test -C build/fuzz --suite fuzz --print-errorlogs --num-processes 2 || rc=1
/usr/bin/python3 tests/summary.py build/debug/meson-logs/testlog.json build/fuzz/meson-logs/testlog.json
s=$?
[ $s -ne 0 ] && rc=1
exit $rc
