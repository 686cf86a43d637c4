#!/usr/bin/env bash
# Side-by-side comparison of a storage node with its peers and limits on this
# machine (issue 2 item 7, issue 16 items 3 and 5).
#
# usage: perf/bench-compare.sh BIN        (make bench-compare)
#   e.g. REPEAT=3 DURATION=5s perf/bench-compare.sh bin/pocket
#
# Installs nothing. Starts on loopback: `BIN node`; redis-server (persistence
# off, single-threaded: the issue-2 targets); memcached with -t = the number
# of cores (as many threads as the node has event loops) and MEMCACHED_MB of
# memory, the peer with the same cores (skipped with a message when
# memcached is not installed); and the echo server (`BIN bench --echo-listen`,
# package perf/echo: the node's event loop answering each request with a
# reply of the node's reply size and nothing else), the small-request limit.
# Runs the matrix printed by `BIN bench --matrix` against the node, Redis and
# memcached, and its small-request cells also against the echo server, with
# the same load generator (`BIN bench`); measures a single-stream loopback TCP
# transfer in the same run; prints one Markdown table: per cell ours against
# Redis (ratio and target), against memcached (target >= 1.00x) and as a share
# of the echo server (target >= 0.80x), and the 1 MiB cell as a share of
# loopback TCP. The servers are stopped on exit, whatever happens. When BIN's
# bench has --server-pid, every run also samples its server's CPU time, and a
# second table gives each store's CPU per operation by cell, beside the
# generator's (perf/bench/cpu.go says what it shows and what it does not).
#
# Cells marked apart in the matrix (the 1-conn GET a second time) run with
# every server's threads on core 0 and the generator on core 1 (taskset),
# as a client on another machine would be; the servers get every core back
# after each apart run. Without taskset or a second core they are skipped
# (n/a in the table). Why: bench.Cell's Apart.
#
# Environment:
#   DURATION    measured time per cell and store (default 5s)
#   WARMUP      unmeasured time before it (default 1s)
#   REPEAT      run the whole matrix this many times; the table shows each
#               cell's median run (default 1; use 3 on a busy machine)
#   NODE_DRAM   the node's DRAM tier (default 4GiB)
#   NODE_ARGS   extra flags for `BIN node` (e.g. "--busy-poll 50us")
#   MEMCACHED_MB  memcached's memory in MB (default 1024: the largest cell
#               holds 256 MiB of 1 MiB values, the 1 KiB cells 100,000 keys)
#   MEMCACHED_THREADS  memcached's -t (default: nproc, the node's loops)
#   REDIS_PORT, NODE_PORT, MEMCACHED_PORT, ECHO_PORT  first ports to try
#               (default 6390, 7190, 11290, 7390)
#   RESULTS     keep the raw JSON results in this file (default: a temp file)
set -euo pipefail

BIN=${1:?usage: $0 path/to/pocket}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
REPEAT=${REPEAT:-1}
NODE_DRAM=${NODE_DRAM:-4GiB}
NODE_ARGS=${NODE_ARGS:-}
MEMCACHED_MB=${MEMCACHED_MB:-1024}
MEMCACHED_THREADS=${MEMCACHED_THREADS:-$(nproc)}

if [[ ! -x $BIN ]]; then
	echo "bench-compare: $BIN is not an executable; run make build" >&2
	exit 1
fi
if ! command -v redis-server >/dev/null; then
	echo "bench-compare: redis-server is not on PATH. Install it (Debian/Ubuntu: apt-get install redis-server) and run again; this script installs nothing." >&2
	exit 1
fi

work=$(mktemp -d)
redis_pid="" node_pid="" memcached_pid="" echo_pid=""
cleanup() {
	for pid in $node_pid $redis_pid $memcached_pid $echo_pid; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $node_pid $redis_pid $memcached_pid $echo_pid; do
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

# Peers and limits beside Redis: each "--target URL" the cells run against.
peers=()
if command -v memcached >/dev/null; then
	mc_port=$(free_port "${MEMCACHED_PORT:-11290}")
	mc_user=()
	# memcached refuses to run as root without -u.
	[[ $(id -u) != 0 ]] || mc_user=(-u "$(id -un)")
	# -I 2m: a 1 MiB value plus its key and header is over the 1 MiB default.
	memcached -l 127.0.0.1 -p "$mc_port" -U 0 -t "$MEMCACHED_THREADS" -m "$MEMCACHED_MB" -I 2m \
		-c 4096 "${mc_user[@]}" >"$work/memcached.log" 2>&1 &
	memcached_pid=$!
	wait_listen memcached "$memcached_pid" "$mc_port" "$work/memcached.log"
	peers+=("memcache://127.0.0.1:$mc_port")
else
	echo "bench-compare: memcached is not on PATH (Debian: apt-get install memcached): no memcached rows" >&2
fi
echo_url=""
if grep -q -- '-echo-listen' <<<"$("$BIN" bench --help 2>&1)"; then
	echo_port=$(free_port "${ECHO_PORT:-7390}")
	"$BIN" bench --echo-listen "127.0.0.1:$echo_port" >"$work/echo.log" 2>&1 &
	echo_pid=$!
	wait_listen "echo server" "$echo_pid" "$echo_port" "$work/echo.log"
	echo_url="echo://127.0.0.1:$echo_port"
else
	echo "bench-compare: $BIN bench has no --echo-listen: no share-of-echo rows" >&2
fi

results=${RESULTS:-$work/results.jsonl}
: >"$results"

# pin_servers CPUS: set the CPU affinity of every thread of every server;
# false if any could not be set.
pin_servers() {
	local pid ok=0
	for pid in $node_pid $redis_pid $memcached_pid $echo_pid; do
		taskset -apc "$1" "$pid" >/dev/null || ok=1
	done
	return $ok
}
all_cpus="0-$(($(nproc) - 1))"
can_apart=0
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
	can_apart=1
else
	echo "bench-compare: taskset or a second core missing: no apart cells" >&2
fi
gen=() # the generator's command prefix: empty, or taskset for apart cells

# Each store's server process, by target URL, for `bench --server-pid` (its
# CPU time per operation, the table after the comparison): a generator
# without the flag runs without it.
declare -A server_pid
server_pid["pocket://127.0.0.1:$node_port"]=$node_pid
server_pid["redis://127.0.0.1:$redis_port"]=$redis_pid
[[ -z $memcached_pid ]] || server_pid["memcache://127.0.0.1:$mc_port"]=$memcached_pid
[[ -z $echo_pid ]] || server_pid["$echo_url"]=$echo_pid
cpu_flag=0
grep -q -- '-server-pid' <<<"$("$BIN" bench --help 2>&1)" && cpu_flag=1

# run LABEL TARGET-FLAGS...: one cell against one store; a failed run is
# reported and shows as n/a or with its error count in the table.
run() {
	local label=$1
	shift
	echo "  $label: ${gen[*]:+${gen[*]} }$*" >&2
	if ! "${gen[@]}" "$BIN" bench "$@" --duration "$DURATION" --warmup "$WARMUP" --json --label "$label" >>"$results"; then
		echo "bench-compare: $label $* failed (see above); continuing" >&2
	fi
}

echo "bench-compare: node on :$node_port, redis on :$redis_port${peers[*]:+, ${peers[*]}}${echo_url:+, $echo_url}; $DURATION per cell (+$WARMUP warm-up)" >&2
matrix=$("$BIN" bench --matrix)
i=0
for ((rep = 1; rep <= REPEAT; rep++)); do
	echo "bench-compare: pass $rep of $REPEAT" >&2
	while read -r name op size conns pipeline echo apart; do
		cell=(--op "$op" --size "$size" --conns "$conns" --pipeline "$pipeline")
		gen=()
		if [[ ${apart:-0} == 1 ]]; then
			((can_apart)) || continue
			if ! pin_servers 0; then
				echo "bench-compare: could not pin the servers to core 0: $name skipped" >&2
				pin_servers "$all_cpus" || true
				continue
			fi
			gen=(taskset -c 1)
		fi
		targets=("pocket://127.0.0.1:$node_port" "redis://127.0.0.1:$redis_port" "${peers[@]}")
		[[ -z $echo_url || ${echo:-0} != 1 ]] || targets+=("$echo_url")
		# Rotate which store goes first so drift over the run favours none.
		n=${#targets[@]}
		for ((k = 0; k < n; k++)); do
			t=${targets[(i + k) % n]}
			pidflag=()
			((cpu_flag)) && [[ -n ${server_pid[$t]:-} ]] && pidflag=(--server-pid "${server_pid[$t]}")
			run "$name" --target "$t" "${cell[@]}" "${pidflag[@]}"
		done
		if ((${#gen[@]})); then
			pin_servers "$all_cpus" || echo "bench-compare: could not give the servers every core back" >&2
			gen=()
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
echo "Go: $(go version "$BIN" 2>/dev/null | cut -d" " -f2 || echo unknown); $(redis-server --version | cut -d' ' -f1-3)${memcached_pid:+; $(memcached -V) -t $MEMCACHED_THREADS -m $MEMCACHED_MB}"
echo "Each cell: $DURATION measured after $WARMUP warm-up, $REPEAT pass(es); node flags: --dram $NODE_DRAM $NODE_ARGS"
echo
"$BIN" bench --report "$results"
