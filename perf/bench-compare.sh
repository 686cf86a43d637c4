#!/usr/bin/env bash
# Side-by-side comparison of a storage node and Redis on this machine
# (issue 2, item 7). Usage: perf/bench-compare.sh BIN   (make bench-compare)
#
# Installs nothing. Starts redis-server (persistence off) and `BIN node` on
# loopback, runs the matrix printed by `BIN bench --matrix` against both with
# the same load generator (`BIN bench`), measures a single-stream loopback
# TCP transfer in the same run, and prints one Markdown table with both
# stores, the ratio ours/Redis and the target. Both servers are stopped on
# exit, whatever happens.
#
# Environment:
#   DURATION    measured time per cell and store (default 5s)
#   WARMUP      unmeasured time before it (default 1s)
#   REPEAT      run the whole matrix this many times; the table shows each
#               cell's median run (default 1; use 3 on a busy machine)
#   NODE_DRAM   the node's DRAM tier (default 4GiB)
#   NODE_ARGS   extra flags for `BIN node` (e.g. "--busy-poll 50us")
#   REDIS_PORT, NODE_PORT  first ports to try (default 6390, 7190)
#   RESULTS     keep the raw JSON results in this file (default: a temp file)
set -euo pipefail

BIN=${1:?usage: $0 path/to/pocket}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
REPEAT=${REPEAT:-1}
NODE_DRAM=${NODE_DRAM:-4GiB}
NODE_ARGS=${NODE_ARGS:-}

if [[ ! -x $BIN ]]; then
	echo "bench-compare: $BIN is not an executable; run make build" >&2
	exit 1
fi
if ! command -v redis-server >/dev/null; then
	echo "bench-compare: redis-server is not on PATH. Install it (Debian/Ubuntu: apt-get install redis-server) and run again; this script installs nothing." >&2
	exit 1
fi

work=$(mktemp -d)
redis_pid="" node_pid=""
cleanup() {
	for pid in $node_pid $redis_pid; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $node_pid $redis_pid; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# listening PORT: true when something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port START: the first port from START on that nobody listens on.
free_port() {
	local p=$1
	while listening "$p"; do p=$((p + 1)); done
	echo "$p"
}

# wait_listen NAME PID PORT LOG: wait until the server accepts connections.
wait_listen() {
	local name=$1 pid=$2 port=$3 log=$4
	for _ in $(seq 100); do
		listening "$port" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench-compare: $name exited; its log:" >&2
			tail -20 "$log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "bench-compare: $name is not listening on 127.0.0.1:$port after 10s" >&2
	exit 1
}

redis_port=$(free_port "${REDIS_PORT:-6390}")
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
wait_listen redis-server "$redis_pid" "$redis_port" "$work/redis.log"

node_port=$(free_port "${NODE_PORT:-7190}")
[[ $node_port == "$redis_port" ]] && node_port=$(free_port $((node_port + 1)))
# shellcheck disable=SC2086 # NODE_ARGS is a list of flags
"$BIN" node --listen "127.0.0.1:$node_port" --dram "$NODE_DRAM" $NODE_ARGS >"$work/node.log" 2>&1 &
node_pid=$!
wait_listen "pocket node" "$node_pid" "$node_port" "$work/node.log"

results=${RESULTS:-$work/results.jsonl}
: >"$results"

# run LABEL TARGET-FLAGS...: one cell against one store; a failed run is
# reported and shows as n/a or with its error count in the table.
run() {
	local label=$1
	shift
	echo "  $label: $*" >&2
	if ! "$BIN" bench "$@" --duration "$DURATION" --warmup "$WARMUP" --json --label "$label" >>"$results"; then
		echo "bench-compare: $label $* failed (see above); continuing" >&2
	fi
}

echo "bench-compare: redis on :$redis_port, node on :$node_port, $DURATION per cell (+$WARMUP warm-up)" >&2
matrix=$("$BIN" bench --matrix)
i=0
for ((rep = 1; rep <= REPEAT; rep++)); do
	echo "bench-compare: pass $rep of $REPEAT" >&2
	while read -r name op size conns pipeline; do
		cell=(--op "$op" --size "$size" --conns "$conns" --pipeline "$pipeline")
		# Alternate which store goes first so drift over the run favours neither.
		if ((i % 2 == 0)); then
			run "$name" --addr "127.0.0.1:$node_port" "${cell[@]}"
			run "$name" --target "redis://127.0.0.1:$redis_port" "${cell[@]}"
		else
			run "$name" --target "redis://127.0.0.1:$redis_port" "${cell[@]}"
			run "$name" --addr "127.0.0.1:$node_port" "${cell[@]}"
		fi
		i=$((i + 1))
	done <<<"$matrix"
	echo "  loopback: one TCP stream over 127.0.0.1" >&2
	"$BIN" bench --loopback --duration "$DURATION" --warmup "$WARMUP" --json --label loopback >>"$results" ||
		echo "bench-compare: loopback measurement failed" >&2
done

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
echo
echo "Machine: $(uname -srm), $(nproc) cores${cpu:+, $cpu}"
echo "Go: $(go version "$BIN" 2>/dev/null | cut -d" " -f2 || echo unknown); $(redis-server --version | cut -d' ' -f1-3)"
echo "Each cell: $DURATION measured after $WARMUP warm-up, $REPEAT pass(es); node flags: --dram $NODE_DRAM $NODE_ARGS"
echo
"$BIN" bench --report "$results"
