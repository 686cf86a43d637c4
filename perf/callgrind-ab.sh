#!/bin/bash
# callgrind-ab.sh BIN_A BIN_B [BIN_C ...]
#
# (issue 16) Counts instructions, not time: on this shared, noisy machine
# callgrind's count for the same binary and load repeats within about 1 %,
# where a time or rate moves by 10 %. perf/regress.sh measures time.
#
# A/B the user-space instructions (callgrind Ir) a standalone DRAM
# `pocket node` spends per pipelined 1 KiB GET. Every binary is run in
# turn and then again in reverse order (A B B A; A B C C B A), each run
# a fresh node under callgrind on its own port. The load always comes
# from the same generator binary ($GEN, default BIN_A), not under
# valgrind. Needs valgrind (callgrind_control) and python3.
#
# Measured window (per run, one node process):
#   warm run  (unmeasured)        bench --duration $WARM
#   zero counters; short run S;   dump S   (bench --duration $SHORT)
#   zero counters; long run  L;   dump L   (bench --duration $LONG)
# Each bench run is --warmup 0, so its "ops" is every GET it sent and got
# an answer for (a batch of --pipeline requests is never left half done:
# the generator checks the clock only between batches). Both S and L do
# the same fixed work besides GETs (dial, preload of $KEYS puts, cleanup of
# $KEYS deletes, close), so
#     Ir/GET = (Ir_L - Ir_S) / (ops_L - ops_S)
# exactly, up to the small node background cost proportional to wall time
# (busy polling is off: --busy-poll 0). The callgrind call count of
# dataplane.(*Node).get over the same window is printed as a cross-check.
#
# callgrind runs with --separate-threads=yes so the Go runtime's sysmon
# thread (a dedicated OS thread woken by wall time, not by requests, so
# under valgrind's slowdown its cost per GET is inflated and varies with
# machine load) is reported apart: the headline Ir/GET excludes it, the
# "all thr" figure includes it.
# Call edges into runtime.mcall carry no inclusive cost in the function
# tables: callgrind sees the goroutine resumed after a park as "called"
# by mcall, which would charge other goroutines' work to the parker.
# Even so, inclusive costs of functions around parking/syscalls jump from
# run to run; the inclusive table ranks only functions whose runs agree
# (within 3%) and lists the others apart. Self costs are reliable.
#
# Env knobs: GEN, KEYS (10000), WARM (2s), SHORT (4s), LONG (40s),
#            PORT0 (7740; run i uses PORT0+i), OUT (dir, default a new temporary one),
#            TOP (15), LOOPS (node --loops, default: node's default),
#            NVME_DIR (a directory that takes O_DIRECT: the node gets an NVMe
#            tier of NVME_SIZE (1GiB) in a file there, removed after its run,
#            and the GETs go to it), CELL (bench flags; default 1 KiB GETs,
#            4 conns x 16; with NVME_DIR 4 KiB GETs from 32 conns)
set -u
[ $# -ge 2 ] || { echo "usage: $0 BIN_A BIN_B [BIN ...]" >&2; exit 2; }
GEN=${GEN:-$1}
KEYS=${KEYS:-10000}
WARM=${WARM:-2s}
SHORT=${SHORT:-4s}
LONG=${LONG:-40s}
PORT0=${PORT0:-7740}
TOP=${TOP:-15}
LOOPS=${LOOPS:-}
OUT=${OUT:-$(mktemp -d -t pocket-callgrind-ab.XXXXXX)}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
for b in "$@" "$GEN"; do [ -x "$b" ] || { echo "not executable: $b" >&2; exit 2; }; done

bins=("$@")
order=()
for ((i = 0; i < ${#bins[@]}; i++)); do order+=("$i"); done
for ((i = ${#bins[@]} - 1; i >= 0; i--)); do order+=("$i"); done

VGPID=""
cleanup() {
	if [ -n "$VGPID" ] && kill -0 "$VGPID" 2>/dev/null; then
		kill -TERM "$VGPID" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$VGPID" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$VGPID" 2>/dev/null
		wait "$VGPID" 2>/dev/null
	fi
	VGPID=""
	if [ -n "${NVME_FILE:-}" ]; then
		rm -f "$NVME_FILE"
	fi
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

NVME_DIR=${NVME_DIR:-}
NVME_SIZE=${NVME_SIZE:-1GiB}
tierargs=()
if [ -n "$NVME_DIR" ]; then
	CELL=${CELL:---op get --size 4KiB --conns 32 --pipeline 1}
	tierargs=(--tier nvme)
fi
CELL=${CELL:---op get --size 1024 --conns 4 --pipeline 16}
read -r -a cellargs <<<"$CELL"

bench() { # PORT DURATION JSONFILE
	"$GEN" bench --target "pocket://127.0.0.1:$1" "${tierargs[@]}" "${cellargs[@]}" \
		--keys "$KEYS" --duration "$2" --warmup 0 --stall-limit 120s --json >"$3" 2>"$3.err"
}


t_all=$(date +%s)
manifest="$OUT/manifest.tsv"
: >"$manifest"
run=0
for idx in "${order[@]}"; do
	bin=${bins[$idx]}
	port=$((PORT0 + run))
	tag="r$run.b$idx"
	base="$OUT/cg.$tag"
	t0=$(date +%s)
	loopsarg=()
	[ -n "$LOOPS" ] && loopsarg=(--loops "$LOOPS")
	if [ -n "$NVME_DIR" ]; then
		NVME_FILE="$NVME_DIR/callgrind-ab.$$.$run"
		loopsarg+=(--nvme "$NVME_FILE:$NVME_SIZE")
	fi
	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$base" \
		"$bin" node --listen "127.0.0.1:$port" --dram 1GiB --busy-poll 0 --log-level warn "${loopsarg[@]}" \
		>"$OUT/node.$tag.log" 2>&1 &
	VGPID=$!
	ok=0
	for _ in $(seq 1 600); do
		grep -qs "serving on" "$OUT/node.$tag.log" && { ok=1; break; }
		kill -0 "$VGPID" 2>/dev/null || break
		sleep 0.1
	done
	[ $ok = 1 ] || { echo "node $tag did not start:" >&2; tail "$OUT/node.$tag.log" >&2; exit 1; }
	bench "$port" "$WARM" "$OUT/bench.$tag.warm.json" || { echo "warm bench failed ($tag)" >&2; cat "$OUT/bench.$tag.warm.json.err" >&2; exit 1; }
	timeout 120 callgrind_control -z "$VGPID" >/dev/null 2>&1 || { echo "zero failed" >&2; exit 1; }
	bench "$port" "$SHORT" "$OUT/bench.$tag.S.json" || { echo "bench S failed ($tag)" >&2; exit 1; }
	timeout 120 callgrind_control -d S "$VGPID" >/dev/null 2>&1 || { echo "dump failed" >&2; exit 1; }
	ls "$base".1-* >/dev/null 2>&1 || { echo "no dump $base.1-*" >&2; exit 1; }
	dS="$base.1"
	timeout 120 callgrind_control -z "$VGPID" >/dev/null 2>&1 || { echo "zero failed" >&2; exit 1; }
	bench "$port" "$LONG" "$OUT/bench.$tag.L.json" || { echo "bench L failed ($tag)" >&2; exit 1; }
	timeout 120 callgrind_control -d L "$VGPID" >/dev/null 2>&1 || { echo "dump failed" >&2; exit 1; }
	ls "$base".2-* >/dev/null 2>&1 || { echo "no dump $base.2-*" >&2; exit 1; }
	dL="$base.2"
	cleanup
	t1=$(date +%s)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$idx" "$bin" "$dS" "$dL" "$OUT/bench.$tag.S.json" "$OUT/bench.$tag.L.json" >>"$manifest"
	echo "run $run: $bin  ($((t1 - t0))s)" >&2
	run=$((run + 1))
done

python3 "$HERE/callgrind_ab.py" "$manifest" "$TOP" | tee "$OUT/report.txt"
echo "(outputs in $OUT; total $(($(date +%s) - t_all))s)"
