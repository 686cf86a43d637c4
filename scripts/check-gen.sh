#!/usr/bin/env bash
# Fails when the committed generated flatbuffers code (Go in wire/fb, Python
# in python/pocket/fb) differs from what the committed schemas generate.
# Skips (with a note) when flatc is not installed.
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
stale=0
for d in wire/fb python/pocket/fb; do
	if ! diff -r -x __pycache__ "$tmp/$d" "$d" >/dev/null; then
		echo "check-gen: $d is stale; run make generate"
		diff -r -x __pycache__ "$tmp/$d" "$d" | head -40
		stale=1
	fi
done
[ "$stale" = 0 ] || exit 1
echo "check-gen: generated code matches the schemas"
