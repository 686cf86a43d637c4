#!/usr/bin/env bash
# Regenerates the flatbuffers code from wire/*.fbs into $OUT (default: the
# work tree): Go into $OUT/wire/fb, Python into $OUT/python/pocket/fb. The
# generated code is committed.
#
# flatc writes Python imports of the schema's namespace as absolute ones
# ("from fb.Entry import Entry"); they are rewritten to relative ones so the
# tables live inside the pocket package instead of a top-level "fb".
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
mkdir -p "$OUT/wire/fb"
rm -f "$OUT"/wire/fb/*.go
flatc --go -o "$OUT/wire" wire/*.fbs
gofmt -w "$OUT/wire/fb"

mkdir -p "$OUT/python/pocket"
rm -rf "$OUT/python/pocket/fb"
flatc --python -o "$OUT/python/pocket" wire/*.fbs
sed -i -E 's/^( *)from fb\.([A-Za-z0-9_]+) import /\1from .\2 import /' "$OUT"/python/pocket/fb/*.py
