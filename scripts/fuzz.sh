#!/usr/bin/env bash
# Runs every Fuzz* target in the module for $FUZZTIME each (default 5s).
# go test -fuzz takes one target in one package at a time, so loop.
#
# Each package's fuzzing test binary is built once (go test -c -fuzz, which
# instruments it as go test -fuzz does) and run once per target from the
# package's directory, with go test's own corpus cache
# ($GOCACHE/fuzz/IMPORTPATH): a go test -fuzz per target linked the binary
# again each time, 8.9 s for a 3 s target against 3.9 s run this way.
#
# Go 1.26's fuzz coordinator can end a duration-bounded run with a bare
# "context deadline exceeded" failure when -fuzztime expires while a worker
# is mid-call (golang/go#75804, fixed in Go 1.27): no input fails and none is
# written. Such a run is accepted only when it wrote no failing input, shows
# no panic, and a replay of the target's corpus then passes; any other
# failure fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5s}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/log
cache=$(go env GOCACHE)/fuzz
found=0
# fuzzPackage DIR: builds DIR's fuzzing test binary and runs each of its
# targets for FUZZTIME.
fuzzPackage() {
	local dir=$1 importpath bin name
	importpath=$(go list "./$dir")
	bin=$work/$(echo "$dir" | tr / _).test
	echo "fuzz ./$dir: building"
	go test -c -fuzz=. -o "$bin" "./$dir"
	for name in $(grep -ohE '^func (Fuzz[A-Za-z0-9_]+)\(' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		found=$((found + 1))
		echo "fuzz ./$dir $name ($FUZZTIME)"
		if (cd "$dir" && "$bin" -test.run='^$' -test.fuzz="^${name}\$" -test.fuzztime="$FUZZTIME" \
			-test.fuzzcachedir="$cache/$importpath") >"$log" 2>&1; then
			cat "$log"
			continue
		fi
		cat "$log"
		if grep -q 'context deadline exceeded' "$log" &&
			! grep -qE 'Failing input written|panic:' "$log" &&
			(cd "$dir" && "$bin" -test.run="^${name}\$" -test.count=1); then
			echo "fuzz: $name ended on Go's -fuzztime shutdown race (golang/go#75804) with no failing input; its corpus replays clean"
			continue
		fi
		echo "fuzz: $name failed" >&2
		exit 1
	done
}
while IFS= read -r dir; do
	fuzzPackage "$dir"
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | xargs -r -n1 dirname | sort -u || true)
echo "fuzz: $found targets"
