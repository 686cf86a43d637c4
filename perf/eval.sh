#!/usr/bin/env bash
# The evaluation suite (issue 6): serverless workloads on our store and on
# Redis side by side, and Pocket's microbenchmarks, on this machine.
# Usage: perf/eval.sh [BIN]   (BIN defaults to bin/pocket; run make build)
#
# Installs nothing. Starts NODES `BIN node` processes and as many
# redis-server processes (persistence off) on loopback, plus one NVMe-tier
# node over a file when O_DIRECT works there; runs the sort on both stores,
# the other workloads on both, and the micro suite, then writes
# perf/results/latest.md with workloads.jsonl, micro.json and the PNG plots
# beside it. Everything it started is stopped on exit, whatever happens.
#
# Same cores on both sides (issue 16): each redis-server is single-threaded,
# so the workloads meet NODES of them, keys spread by a hash of the key
# (`pocket bench workload --target redis://A,redis://B,...`, client-side
# sharding), as they meet NODES storage nodes. The micro suite compares one
# node with one redis-server.
#
#   e.g. NODES=2 SORT_SIZE=256MiB perf/eval.sh bin/pocket
#
# Environment (defaults in brackets):
#   SORT_SIZE [1GiB]  SORT_WORKERS [16]   the sort of issue 6's target
#   WL_SIZE [16MiB]   WL_WORKERS [16]     mapreduce and statechain input
#   PS_SIZE [64KiB]   PS_ROUNDS [10]      paramserver model and rounds
#   NODES [2]         NODE_DRAM [2GiB]    the local cluster
#   NVME_SIZE [1GiB]  NVME_DIR [a temp dir]  NVMe-tier node's file ("" skips)
#   MICRO_DURATION [1s] MICRO_SAMPLES [2000] MICRO_CLIENTS [8]
#   OUT [perf/results]
set -euo pipefail

BIN=${1:-bin/pocket}
SORT_SIZE=${SORT_SIZE:-1GiB}
SORT_WORKERS=${SORT_WORKERS:-16}
WL_SIZE=${WL_SIZE:-16MiB}
WL_WORKERS=${WL_WORKERS:-16}
PS_SIZE=${PS_SIZE:-64KiB}
PS_ROUNDS=${PS_ROUNDS:-10}
NODES=${NODES:-2}
NODE_DRAM=${NODE_DRAM:-2GiB}
NVME_SIZE=${NVME_SIZE-1GiB}
MICRO_DURATION=${MICRO_DURATION:-1s}
MICRO_SAMPLES=${MICRO_SAMPLES:-2000}
MICRO_CLIENTS=${MICRO_CLIENTS:-8}
OUT=${OUT:-perf/results}

die() {
	echo "eval: $*" >&2
	exit 1
}
[[ -x $BIN ]] || die "$BIN is not an executable; run make build"
command -v redis-server >/dev/null ||
	die "redis-server is not on PATH. Install it (Debian/Ubuntu: apt-get install redis-server); this script installs nothing."
"$BIN" bench workload --help >/dev/null 2>&1 || die "$BIN has no 'bench workload' command"
MICRO=(bench micro)
"$BIN" bench micro --help >/dev/null 2>&1 || MICRO=(bench workload micro)

work=$(mktemp -d)
NVME_DIR=${NVME_DIR:-$work}
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$work"
	[[ $NVME_DIR == "$work" ]] || rm -f "$NVME_DIR/eval-nvme.img"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
used_ports=" "
free_port() {
	local p=$1
	while listening "$p" || [[ $used_ports == *" $p "* ]]; do p=$((p + 1)); done
	used_ports+="$p "
	echo "$p"
}

# start NAME PORT LOG CMD...: start a server, wait until it listens; false
# (with its log shown) if it exits first.
start() {
	local name=$1 port=$2 log=$3
	shift 3
	"$@" >"$log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		listening "$port" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "eval: $name exited; its log:" >&2
			tail -5 "$log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "eval: $name is not listening on 127.0.0.1:$port after 10s" >&2
	return 1
}

redis=""
for i in $(seq "$NODES"); do
	p=$(free_port 6400)
	mkdir -p "$work/redis$i"
	start "redis-server $i" "$p" "$work/redis$i.log" redis-server --port "$p" --bind 127.0.0.1 \
		--save '' --appendonly no --dir "$work/redis$i" || die "redis-server $i did not start"
	redis+="${redis:+,}redis://127.0.0.1:$p"
done

nodes=""
for i in $(seq "$NODES"); do
	p=$(free_port 7300)
	start "node $i" "$p" "$work/node$i.log" "$BIN" node --listen "127.0.0.1:$p" --dram "$NODE_DRAM" ||
		die "node $i did not start"
	nodes+="${nodes:+,}127.0.0.1:$p"
done

nvme_nodes="" nvme_note=""
if [[ -n $NVME_SIZE ]]; then
	p=$(free_port 7350)
	if start "nvme node" "$p" "$work/nvme.log" "$BIN" node --listen "127.0.0.1:$p" --dram 0 \
		--nvme "$NVME_DIR/eval-nvme.img:$NVME_SIZE"; then
		nvme_nodes="127.0.0.1:$p"
	else
		nvme_note="the NVMe-tier node did not start over $NVME_DIR (O_DIRECT may be unsupported there; set NVME_DIR)"
	fi
fi

mkdir -p "$OUT"
results="$OUT/workloads.jsonl"
: >"$results"
failed=0

# wl NAME STORE-FLAGS... -- WORKLOAD-FLAGS...: one run, its JSON appended.
wl() {
	local name=$1
	shift
	echo "eval: workload $name $*" >&2
	if ! "$BIN" bench workload "$name" "$@" --json >>"$results"; then
		echo "eval: workload $name $* failed or did not verify" >&2
		failed=1
	fi
}

pocket_flags=(--nodes "$nodes")
redis_flags=(--target "$redis")
# The sort of the target, Redis first then ours, then ours first then
# Redis, so drift over the run favours neither; the table shows all four.
wl sort "${redis_flags[@]}" --workers "$SORT_WORKERS" --size "$SORT_SIZE"
wl sort "${pocket_flags[@]}" --workers "$SORT_WORKERS" --size "$SORT_SIZE"
wl sort "${pocket_flags[@]}" --workers "$SORT_WORKERS" --size "$SORT_SIZE"
wl sort "${redis_flags[@]}" --workers "$SORT_WORKERS" --size "$SORT_SIZE"
for store in pocket redis; do
	flags=("${pocket_flags[@]}")
	[[ $store == redis ]] && flags=("${redis_flags[@]}")
	wl mapreduce "${flags[@]}" --workers "$WL_WORKERS" --size "$WL_SIZE"
	wl paramserver "${flags[@]}" --workers "$WL_WORKERS" --size "$PS_SIZE" --rounds "$PS_ROUNDS"
	wl statechain "${flags[@]}" --workers "$WL_WORKERS" --size "$WL_SIZE"
done

echo "eval: micro suite" >&2
micro_flags=(--nodes "${nodes%%,*}" --redis "${redis%%,*}" --out "$OUT" --duration "$MICRO_DURATION"
	--samples "$MICRO_SAMPLES" --clients "$MICRO_CLIENTS")
[[ -n $nvme_nodes ]] && micro_flags+=(--nvme-nodes "$nvme_nodes")
"$BIN" "${MICRO[@]}" "${micro_flags[@]}" >/dev/null || die "micro suite failed"

{
	echo "# Evaluation: latest run"
	echo
	echo "Run $(date -u +%Y-%m-%dT%H:%MZ) by \`perf/eval.sh\` on $(uname -srm), $(nproc) cores," \
		"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GB RAM;" \
		"$(go version "$BIN" 2>/dev/null | cut -d' ' -f2); $(redis-server --version | cut -d' ' -f1-3)."
	echo "Our store: $NODES \`pocket node\` processes with --dram $NODE_DRAM, a static job over all of them;" \
		"Redis: $NODES redis-server processes (one per node: the same cores), persistence off, keys sharded by hash in the client;" \
		"the micro suite compares one node with one redis-server. Every worker is its own process with its own client." \
		"Clients and servers share the machine's cores."
	echo
	echo "## Workloads"
	echo
	echo "Sort: \`pocket bench workload sort (--nodes ... | --target redis://...) --workers $SORT_WORKERS --size $SORT_SIZE\`," \
		"run twice on each store. Others: $WL_WORKERS workers, $WL_SIZE (paramserver: $PS_SIZE model, $PS_ROUNDS rounds)."
	echo "Total is the timed phases' wall time (worker start-up included); shuffle is the slowest mapper's" \
		"shuffle writes plus the slowest reducer's shuffle reads; moved counts every byte put or got."
	echo
	"$BIN" bench workload --report "$results"
	echo
	echo "## Microbenchmarks"
	echo
	cat "$OUT/micro.md"
	[[ -n $nvme_note ]] && printf '\nNote: %s\n' "$nvme_note"
	echo
	echo "![latency](micro-latency.png) ![throughput](micro-throughput.png)"
} >"$OUT/latest.md"
echo "eval: wrote $OUT/latest.md" >&2
exit "$failed"
