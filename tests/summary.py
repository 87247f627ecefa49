#!/usr/bin/env python3
"""Sums meson test logs (testlog.json, one JSON object per line) into the
closing line `N passed, N failed, N skipped`. Exit status 1 when any test
failed or a log is missing."""
import json
import sys

passed = failed = skipped = 0
missing = []
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line).get("result", "")
                if r in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif r == "SKIP":
                    skipped += 1
                else:  # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, INTERRUPT
                    failed += 1
    except OSError:
        missing.append(path)
for m in missing:
    print(f"summary: no test log at {m}", file=sys.stderr)
    failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
