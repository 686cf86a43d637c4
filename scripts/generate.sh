#!/usr/bin/env bash
# Regenerates the flatbuffers Go code from wire/*.fbs into $OUT/wire/fb
# (default: the work tree). The generated code is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
mkdir -p "$OUT/wire/fb"
rm -f "$OUT"/wire/fb/*.go
flatc --go -o "$OUT/wire" wire/*.fbs
gofmt -w "$OUT/wire/fb"
