#!/usr/bin/env bash
# Regression guard (issue 16, item 4): the same load against two builds of
# pocket, side by side on this machine.
#
# usage: perf/regress.sh OLD_REV NEW_REV
#   e.g. perf/regress.sh HEAD .          (last commit against the working tree)
#        perf/regress.sh v1.2 main
#
# Builds both revisions (`go build -o ... ./tools/pocket`; a REV other than
# `.` in a detached `git worktree` under a temp dir, `.` in place from the
# working tree as it is, uncommitted changes included), starts one node of
# each with the same flags on free loopback ports, and drives both with ONE
# generator, the NEW build's `pocket bench`, so both nodes meet the same
# client. Cells alternate build by build, cell by cell and pass by pass
# (ABBA: the order of a cell flips from cell to cell and from pass to pass),
# so drift over the run favours neither build. Prints a Markdown table:
# per cell the median of OLD and of NEW over REPEAT passes, NEW/OLD of the
# medians and the spread of the per-pass ratios (min-max); a second one
# with each cell's p99 and p999 (medians per build, NEW/OLD), since a change
# can move a tail and leave the main figure; a third with each node cell's
# CPU time per operation (when the generator has --server-pid: medians per
# build, and NEW/OLD of the node's CPU over the generator's per pass: a
# second view beside the throughput, see perf/bench/cpu.go); plus the
# machine and the Go versions. Servers and worktrees are removed on exit,
# whatever happens. Installs nothing; needs git, go, python3 and coreutils'
# timeout.
#
# Cells (names as in `pocket bench --matrix` where they are there):
#   get-1k-c50      1 KiB GET, 50 conns                      ops/s
#   put-1k-c50      1 KiB PUT, 50 conns                      ops/s
#   get-1k-p16      1 KiB GET, 50 conns x 16 pipelined       ops/s
#   put-1k-p16      1 KiB PUT, 50 conns x 16 pipelined       ops/s
#   get-1m-c8       1 MiB GET, 8 conns                       MB/s
#   get-1k-c1       1 KiB GET, 1 conn                        p50 us
#   nvme-get-1m-c8  1 MiB GET from the NVMe tier, 8 conns    MB/s
#   nvme-get-4k-c32 4 KiB GETs from the NVMe tier, 32 conns  ops/s
#   nvme-get-4k-c1  4 KiB GET from the NVMe tier, 1 conn     p50 us
#   sdk-put-64m     64 MiB PUT through the SDK, 1 conn       MB/s
#   sdk-get-64m     64 MiB GET through the SDK, 1 conn       MB/s
# The NVMe cells run against a second node of each build (`--dram 1GiB
# --nvme FILE:NVME_SIZE` plus NODE_ARGS, a file in NVME_DIR; separate so the
# NVMe tier's busy-poll default does not change the DRAM cells); they are
# skipped when either build's node lacks --nvme or the generator --tier. The
# SDK cells run `pocket bench --controller` against a one-node `pocket up`
# cluster of each build (`--nodes 1 --dram DRAM`; NODE_ARGS do not reach
# those nodes; each build's own `pocket bench` drives its cluster, since the
# SDK in the client changes with the nodes); they are skipped when either
# build lacks `up` or the NEW generator --controller.
# A run that fails, times out or counts errors is left out of its cell; a
# cell with no good run in either build shows n/a. The run goes on.
# Not covered: multi-node placement, autoscaling and workloads (perf/eval.sh,
# pocket trace), Redis (perf/bench-compare.sh).
#
# Environment:
#   DURATION     measured time per run (default 3s)
#   WARMUP       unmeasured time before it (default 1s)
#   REPEAT       passes over the cells; the table shows medians (default 5)
#   DRAM         DRAM tier of the DRAM and SDK nodes (default 2GiB)
#   NODE_ARGS    extra flags for both builds' `pocket node` (e.g. "--loops 2")
#   CELLS        only these cells: names or globs, space or comma separated
#                (e.g. "get-1k-* nvme-*"; default all)
#   NVME_DIR     directory of the NVMe tier files (default: the temp dir)
#   NVME_SIZE    NVMe tier size of each NVMe node (default 4GiB)
#   PORT         first loopback port to try (default 7290)
#   RUN_TIMEOUT  seconds before a run is abandoned (default 300)
#   RESULTS      keep the raw JSON lines here (default: a temp file)
set -euo pipefail

usage="usage: $0 OLD_REV NEW_REV   (NEW_REV . = the working tree)"
OLD_REV=${1:?$usage}
NEW_REV=${2:?$usage}
DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-1s}
REPEAT=${REPEAT:-5}
DRAM=${DRAM:-2GiB}
NODE_ARGS=${NODE_ARGS:-}
CELLS=${CELLS:-}
NVME_SIZE=${NVME_SIZE:-4GiB}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
# DURATION and WARMUP are Go durations (3s, 500ms); a bare number is
# refused here, before any build, not by every run's bench.
for v in DURATION WARMUP; do
	if ! [[ ${!v} =~ ^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$ ]]; then
		echo "regress: $v=${!v} is not a duration: give a unit, as in 3s or 500ms" >&2
		exit 2
	fi
done
if ! [[ $REPEAT =~ ^[1-9][0-9]*$ ]]; then
	echo "regress: REPEAT=$REPEAT is not a count of passes (1 or more)" >&2
	exit 2
fi
# Servers must not register with a controller from the caller's shell.
unset POCKET_CONTROLLER POCKET_SECRET

for tool in git go python3 timeout; do
	command -v "$tool" >/dev/null || {
		echo "regress: $tool is not on PATH" >&2
		exit 1
	}
done
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)

work=$(mktemp -d "${TMPDIR:-/tmp}/pocket-regress.XXXXXX")
NVME_DIR=${NVME_DIR:-$work}
worktrees=() pids=() bench_pid=""
cleanup() {
	local pid wt
	[[ -z $bench_pid ]] || kill -- "-$bench_pid" 2>/dev/null || true
	for pid in "${pids[@]}"; do
		# Each server leads its own process group (setsid): end it and its children.
		kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	for wt in "${worktrees[@]}"; do
		git -C "$repo" worktree remove --force "$wt" >/dev/null 2>&1 || true
	done
	((${#worktrees[@]} == 0)) || git -C "$repo" worktree prune >/dev/null 2>&1 || true
	rm -f "$NVME_DIR/regress-$$-old.nvme" "$NVME_DIR/regress-$$-new.nvme"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# describe REV: a commit, or the working tree for `.`.
describe() {
	if [[ $1 == . ]]; then
		local dirty=""
		[[ -z $(git -C "$repo" status --porcelain --untracked-files=no) ]] || dirty=" + uncommitted changes"
		echo "working tree (HEAD $(git -C "$repo" rev-parse --short HEAD)$dirty)"
	else
		local d
		d=$(git -C "$repo" log -1 --format='%h %s' "$1^{commit}")
		((${#d} <= 70)) || d="${d:0:67}..."
		echo "$d"
	fi
}

# build REV NAME: builds REV into $work/NAME/pocket and prints that path.
build() {
	local rev=$1 name=$2 src out=$work/$2/pocket
	mkdir -p "$work/$name"
	if [[ $rev == . ]]; then
		src=$repo
	else
		src=$work/wt-$name
		worktrees+=("$src")
		git -C "$repo" worktree add --detach "$src" "$rev" >/dev/null 2>&1 || {
			echo "regress: git worktree add $rev failed" >&2
			return 1
		}
	fi
	echo "regress: building $name ($rev) from $src" >&2
	(cd "$src" && go build -o "$out" ./tools/pocket) || {
		echo "regress: building $rev failed" >&2
		return 1
	}
	echo "$out"
}

for rev in "$OLD_REV" "$NEW_REV"; do
	[[ $rev == . ]] || git -C "$repo" rev-parse --verify --quiet "$rev^{commit}" >/dev/null || {
		echo "regress: $rev is not a commit" >&2
		exit 1
	}
done
old_desc=$(describe "$OLD_REV")
new_desc=$(describe "$NEW_REV")
# Not in $(...): worktrees+= must reach this shell for the cleanup.
build "$OLD_REV" old >"$work/old.path"
build "$NEW_REV" new >"$work/new.path"
declare -A bin
bin[old]=$(<"$work/old.path")
bin[new]=$(<"$work/new.path")
gen=${bin[new]}

# listening PORT: true when something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: the next port from PORT on that nobody listens on (none twice).
next_port=${PORT:-7290}
free_port() {
	while listening "$next_port"; do next_port=$((next_port + 1)); done
	port=$next_port
	next_port=$((next_port + 1))
}

# start NAME PORT LOG CMD...: starts a server in its own process group and
# waits until PORT accepts connections; false when it exits or takes 60s.
start() {
	local name=$1 p=$2 log=$3 pid
	shift 3
	setsid "$@" >"$log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 600); do
		listening "$p" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "regress: $name exited; its log:" >&2
			tail -20 "$log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "regress: $name is not listening on 127.0.0.1:$p after 60s" >&2
	return 1
}

# has BIN SUBCOMMAND FLAG: true when `BIN SUBCOMMAND --help` lists -FLAG.
has() {
	local help
	help=$("$1" "$2" --help 2>&1 || true)
	[[ $help == *"  -$3 "* || $help == *"  -$3"$'\n'* ]]
}

# wanted CELL: true when CELLS is empty or one of its patterns matches.
wanted() {
	[[ -z $CELLS ]] && return 0
	local pat
	for pat in ${CELLS//,/ }; do
		# shellcheck disable=SC2053 # a glob on purpose
		[[ $1 == $pat ]] && return 0
	done
	return 1
}

# The cells: name, kind (dram, nvme or sdk: which server), metric (a field of
# bench's JSON), description, then the bench flags.
cells=()
cell() {
	wanted "$1" || return 0
	cells+=("$1")
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$work/cells.tsv"
	shift 4
	printf '%s\n' "$*" >"$work/cell-${cells[-1]}.args"
}
: >"$work/cells.tsv"
cell get-1k-c50 dram ops_per_sec "1 KiB GET, 50 conns" --op get --size 1KiB --conns 50 --pipeline 1
cell put-1k-c50 dram ops_per_sec "1 KiB PUT, 50 conns" --op put --size 1KiB --conns 50 --pipeline 1
cell get-1k-p16 dram ops_per_sec "1 KiB GET, 50 conns x 16 pipelined" --op get --size 1KiB --conns 50 --pipeline 16
cell put-1k-p16 dram ops_per_sec "1 KiB PUT, 50 conns x 16 pipelined" --op put --size 1KiB --conns 50 --pipeline 16
cell get-1m-c8 dram mb_per_sec "1 MiB GET, 8 conns" --op get --size 1MiB --conns 8 --pipeline 1
cell get-1k-c1 dram p50_us "1 KiB GET, 1 conn" --op get --size 1KiB --conns 1 --pipeline 1

nvme=yes sdk=yes
for b in old new; do
	has "${bin[$b]}" node nvme || nvme="no: $b node has no --nvme"
	# (No pipe into grep -q: under pipefail the writer's SIGPIPE, when
	# grep stops reading early, would fail the test at random.)
	grep -q '^ *up ' <<<"$("${bin[$b]}" --help 2>&1)" || sdk="no: $b has no pocket up"
done
has "$gen" bench tier || nvme="no: new bench has no --tier"
has "$gen" bench controller || sdk="no: new bench has no --controller"
if [[ $nvme == yes ]]; then
	cell nvme-get-1m-c8 nvme mb_per_sec "1 MiB GET from the NVMe tier, 8 conns" --tier nvme --op get --size 1MiB --conns 8 --keys 2048
	cell nvme-get-4k-c32 nvme ops_per_sec "4 KiB GETs from the NVMe tier, 32 conns" --tier nvme --op get --size 4KiB --conns 32 --keys 100000
	cell nvme-get-4k-c1 nvme p50_us "4 KiB GET from the NVMe tier, 1 conn" --tier nvme --op get --size 4KiB --conns 1 --keys 100000
fi
if [[ $sdk == yes ]]; then
	cell sdk-put-64m sdk mb_per_sec "64 MiB PUT through the SDK, 1 conn" --op put --size 64MiB --conns 1
	cell sdk-get-64m sdk mb_per_sec "64 MiB GET through the SDK, 1 conn" --op get --size 64MiB --conns 1
fi
((${#cells[@]})) || {
	echo "regress: CELLS=\"$CELLS\" matches no cell" >&2
	exit 1
}
# need KIND: true when a chosen cell runs against that kind of server.
need() { awk -F'\t' -v k="$1" '$2 == k { found = 1 } END { exit !found }' "$work/cells.tsv"; }

# Servers: for each build a DRAM node, an NVMe node and a one-node cluster,
# each only when one of its cells runs. A server that does not come up
# leaves its cells n/a for that build.
# A node's runs also report its CPU time per operation when the generator
# can sample it (`pocket bench --server-pid`): the third table.
cpu_flag=no
has "$gen" bench server-pid && cpu_flag=yes
declare -A target sdkenv
for b in old new; do
	if need dram; then
		free_port
		# shellcheck disable=SC2086 # NODE_ARGS is a list of flags
		start "$b node" "$port" "$work/$b-node.log" \
			"${bin[$b]}" node --listen "127.0.0.1:$port" --dram "$DRAM" $NODE_ARGS &&
			target[$b-dram]="--addr 127.0.0.1:$port" &&
			if [[ $cpu_flag == yes ]]; then target[$b-dram]+=" --server-pid ${pids[-1]}"; fi
	fi
	if need nvme; then
		free_port
		# shellcheck disable=SC2086 # NODE_ARGS is a list of flags
		start "$b nvme node" "$port" "$work/$b-nvme.log" \
			"${bin[$b]}" node --listen "127.0.0.1:$port" --dram 1GiB \
			--nvme "$NVME_DIR/regress-$$-$b.nvme:$NVME_SIZE" $NODE_ARGS &&
			target[$b-nvme]="--addr 127.0.0.1:$port" &&
			if [[ $cpu_flag == yes ]]; then target[$b-nvme]+=" --server-pid ${pids[-1]}"; fi
	fi
	if need sdk; then
		free_port
		# Builds whose up runs mutual TLS by default keep their CA and
		# certificates in a data directory of their own, which the build's
		# status and bench find through $POCKET_DATA_DIR (sdkenv); older
		# builds run plain TCP.
		tls=()
		sdkenv[$b]=""
		# (up --help exits non-zero: no pipe, which pipefail would fail.)
		if grep -q -- '-insecure' <<<"$("${bin[$b]}" up --help 2>&1)"; then
			mkdir -p "$work/$b-data"
			tls=(--data-dir "$work/$b-data")
			sdkenv[$b]="POCKET_DATA_DIR=$work/$b-data"
		fi
		if start "$b cluster" "$port" "$work/$b-up.log" \
			"${bin[$b]}" up --nodes 1 --dram "$DRAM" --listen "127.0.0.1:$port" \
			"${tls[@]}"; then
			# The controller listens before its node has registered.
			for _ in $(seq 300); do
				# shellcheck disable=SC2086 # sdkenv is one VAR=value or empty
				grep -qi active <<<"$(env ${sdkenv[$b]} "${bin[$b]}" status --controller "127.0.0.1:$port" 2>/dev/null)" && break
				sleep 0.1
			done
			target[$b-sdk]="--controller 127.0.0.1:$port"
		fi
	fi
done

results=${RESULTS:-$work/results.jsonl}
: >"$results"

# run CELL BUILD PASS: one run; its JSON line goes to the results, labelled
# CELL|BUILD|PASS. A failure is reported and leaves that run out.
run() {
	local c=$1 b=$2 pass=$3 kind args tgt out
	kind=$(awk -F'\t' -v c="$c" '$1 == c { print $2 }' "$work/cells.tsv")
	tgt=${target[$b-$kind]:-}
	if [[ -z $tgt ]]; then
		echo "  $c $b: no $kind server; n/a" >&2
		return 0
	fi
	args=$(<"$work/cell-$c.args")
	echo "  $c $b" >&2
	# In the background so a signal ends the script at once; timeout leads
	# its own process group, which the cleanup ends.
	# The SDK cells measure each build's own SDK (client and servers
	# change together); the other cells use one generator.
	local g=$gen e=""
	[[ $kind == sdk ]] && g=${bin[$b]} && e=${sdkenv[$b]:-}
	# shellcheck disable=SC2086 # tgt and args are lists of flags, e one VAR=value or empty
	env $e timeout --kill-after=10 "$RUN_TIMEOUT" "$g" bench $tgt $args \
		--duration "$DURATION" --warmup "$WARMUP" --json --label "$c|$b|$pass" \
		>"$work/run.out" 2>"$work/run.err" &
	bench_pid=$!
	if wait "$bench_pid"; then
		cat "$work/run.out" >>"$results"
	else
		echo "regress: $c against $b failed (exit $?): $(tail -3 "$work/run.err" | tr '\n' ' ')" >&2
	fi
	bench_pid=""
}

load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
load_start=$(load)
if awk -v l="${load_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
	echo "regress: load average $load_start on $(nproc) cores: the machine is busy and the ratios will be noisy" >&2
fi
echo "regress: old $old_desc; new $new_desc; ${#cells[@]} cells, $REPEAT pass(es), $DURATION (+$WARMUP warm-up) per run" >&2
for ((pass = 1; pass <= REPEAT; pass++)); do
	echo "regress: pass $pass of $REPEAT" >&2
	for i in "${!cells[@]}"; do
		c=${cells[i]}
		if (((i + pass) % 2)); then
			run "$c" old "$pass"
			run "$c" new "$pass"
		else
			run "$c" new "$pass"
			run "$c" old "$pass"
		fi
	done
done
load_end=$(load)

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
gover() { go version "$1" 2>/dev/null | cut -d' ' -f2 || echo unknown; }
echo
echo "## pocket regression check: NEW/OLD"
echo
echo "- OLD: \`$OLD_REV\` = $old_desc"
echo "- NEW: \`$NEW_REV\` = $new_desc"
echo "- Machine: $(uname -srm), $(nproc) cores${cpu:+, $cpu}; load average $load_start at start, $load_end at end"
echo "- Go: $(go version | cut -d' ' -f3-); binaries built with $(gover "${bin[old]}") (old), $(gover "${bin[new]}") (new)"
echo "- Each run: $DURATION measured after $WARMUP warm-up; $REPEAT pass(es), ABBA order; generator: the NEW build's \`pocket bench\`"
need nvme || nvme="not chosen"
[[ $nvme != yes ]] || nvme="yes, \`--dram 1GiB --nvme FILE:$NVME_SIZE${NODE_ARGS:+ $NODE_ARGS}\`, FILE in $NVME_DIR"
need sdk || sdk="not chosen"
[[ $sdk != yes ]] || sdk="yes, \`pocket up --nodes 1 --dram $DRAM\`"
echo "- Nodes: \`--dram $DRAM${NODE_ARGS:+ $NODE_ARGS}\`; NVMe cells: $nvme; SDK cells: $sdk"
echo
python3 "$here/regress_report.py" "$work/cells.tsv" "$results"
