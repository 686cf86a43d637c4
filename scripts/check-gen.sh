#!/usr/bin/env bash
# Fails when the committed generated flatbuffers code differs from what the
# committed schemas generate. Skips (with a note) when flatc is not installed.
# Then (no flatc needed) wire/schema_test.go parses wire/data.fbs and
# wire/control.fbs (and fails on any other wire/*.fbs) and proves the
# hand-written verifier specs (wire.TableSpec) agree with every table; it
# also runs with go test ./wire, hence with make test.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -run 'Spec|Schema' ./wire >/dev/null || {
	echo "check-gen: the verifier specs disagree with the schemas; see go test -run 'Spec|Schema' ./wire"
	exit 1
}
echo "check-gen: verifier specs match the schemas"
if ! command -v flatc >/dev/null; then
	echo "check-gen: flatc not installed; skipped (apt-get install flatbuffers-compiler)"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OUT="$tmp" ./scripts/generate.sh >/dev/null
if ! diff -r "$tmp/wire/fb" wire/fb >/dev/null; then
	echo "check-gen: wire/fb is stale; run make generate"
	diff -r "$tmp/wire/fb" wire/fb | head -40
	exit 1
fi
echo "check-gen: generated code matches the schemas"
