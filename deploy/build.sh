#!/usr/bin/env bash
# Configures (once) and builds one flavour into build/<flavour>:
#   release  optimized, jemalloc
#   debug    -O1 -g, ASan + UBSan, warnings are errors (gcc)
#   fuzz     clang, libFuzzer targets, ASan + UBSan, warnings are errors
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
dir=build/$flavour
case "$flavour" in
release) opts=(--buildtype=release) ;;
debug)   opts=(--buildtype=debug -Doptimization=1 -Db_sanitize=address,undefined -Db_lundef=false
               --werror) ;;
fuzz)    export CC=clang
         opts=(--buildtype=debug -Doptimization=1 -Dfuzz=true -Db_sanitize=address,undefined
               -Db_lundef=false --werror) ;;
*) echo "build.sh: unknown flavour '$flavour' (release|debug|fuzz)" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "${opts[@]}" >/dev/null || { rm -rf "$dir"; exit 1; }
fi
ninja --quiet -C "$dir"
