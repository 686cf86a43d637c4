#!/usr/bin/env bash
# A node's NVMe tier against the device limit, in one run on one file system
# (issues 4 and 16):
#   - 1 MiB GET from a node's NVMe tier over loopback (8 conns) against fio's
#     1 MiB RANDOM read bandwidth (io_uring, O_DIRECT, QD8) on a file in the
#     same directory: with huge-page buffers (--iomem=shmhuge), the fair limit
#     (target >= 0.9x), and with fio's default buffers (4 KiB pages);
#   - 4 KiB GETs from the NVMe tier with 32 conns (ops/s) against fio's 4 KiB
#     random read IOPS at QD32, both buffer kinds (target >= 0.7x);
#   - the same node's 4 KiB GETs from its DRAM tier with 32 conns right
#     after (ops/s, node CPU per GET): the network path's limit beside the
#     device's, as the DRAM 1 MiB GET is for the 1 MiB cell;
#   - 4 KiB GET p50 from the NVMe tier (1 conn) against fio's 4 KiB random
#     read p50 at QD1 plus the DRAM tier's 4 KiB GET p50 (target <= 1.2x);
#   - the network's limit beside the device's: the same node's 1 MiB GET
#     from its DRAM tier (8 conns, 256 keys, right after its NVMe cell) and
#     one TCP stream over 127.0.0.1 (`pocket bench --loopback`, as
#     perf/bench-compare.sh measures it); the 1 MiB NVMe GET is also shown as
#     a share of each, and the DRAM GET as a share of fio's limit. When the
#     DRAM GET sits near or under fio's rate, the send over loopback, not
#     the device, binds the 1 MiB cell. LOOPBACK=0 skips the stream.
# fio runs time-based (--time_based --runtime), like `pocket bench`.
#
# Why alternate and repeat: on a shared machine the load drifts by minutes,
# and when every fio cell ran before every node cell the same binary's ratio
# moved from 0.15 to 0.67 between runs. Each round now runs a fio cell and
# then the matching node cell (for each binary given) right after it, REPEAT
# rounds (default 3); the table shows the median of each figure and the
# median of the per-round ratios with their range (min-max), so a ratio
# compares figures measured seconds apart.
#
# Why randread for the 1 MiB limit: the node's GETs pick keys at random, so
# its device reads land at random 1 MiB offsets of its tier file; fio's
# sequential read lets the device (and any host cache or read-ahead below a
# virtual disk) stream, which the node never sees. fio's file is as large
# as the node's 1 MiB working set (2048 keys, 2 GiB) so both spread reads
# over the same span. QD8 matches the node's 8 connections, one read each.
#
# Why both fio buffer kinds: fio's default buffers are 4 KiB pages, so each
# 1 MiB request carries 256 scatter-gather segments, where the node's buffers
# are huge pages. Against that run the node once looked 1.70x "faster than
# fio"; against --iomem=shmhuge it reached 0.68x. The script reserves 64 huge
# pages (vm.nr_hugepages; needs root) for fio for the whole run and restores
# the old value on exit; without root the huge-page limit shows n/a and why.
#
# Old against new binary: give several binaries, comma-separated; each gets
# its own node (own tier file) and is measured right after the same fio
# cell in every round, in an order rotated by one each round (a binary's
# place in the round once moved its 4 KiB p50 more than the change under
# test did), and the table has one set of rows per binary.
#
# usage: perf/nvme-node-compare.sh [POCKET_BIN[,POCKET_BIN...]] [DIR] [SECONDS]
#   e.g. sudo REPEAT=5 perf/nvme-node-compare.sh bin/pocket /mnt/nvme 10
#        perf/nvme-node-compare.sh /tmp/old/pocket,bin/pocket "" 5
#   POCKET_BIN default bin/pocket (make build); DIR default a temp dir (must
#   accept O_DIRECT: not tmpfs); SECONDS per measurement, default 5.
#   REPEAT rounds (default 3); PLAIN=0 skips the 4 KiB-page fio runs;
#   LOOPBACK=0 skips the loopback stream; CELLS picks the cells (words of
#   "1m 4k p50", default all three), e.g. CELLS=4k for an old/new run of
#   the 32-conn 4 KiB cell alone.
# Needs fio and jq; installs nothing. The node and the generator share the
# cores: a quiet machine gives steadier figures, the alternation fairer ones.
set -euo pipefail
IFS=, read -r -a bins <<<"${1:-bin/pocket}"
dir=${2:-}
secs=${3:-5}
rounds=${REPEAT:-3}
plain=${PLAIN:-1}
loopback=${LOOPBACK:-1}
cells=" ${CELLS:-1m 4k p50} "
for c in $cells; do
	[[ $c == 1m || $c == 4k || $c == p50 ]] || { echo "nvme-node-compare: CELLS: unknown cell $c (want 1m, 4k or p50)" >&2; exit 2; }
done
want() { [[ $cells == *" $1 "* ]]; } # want CELL: CELLS names it
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "nvme-node-compare: REPEAT=$rounds is not a positive count" >&2; exit 2; }
for tool in fio jq "${bins[@]}"; do
	command -v "$tool" >/dev/null || { echo "nvme-node-compare: $tool not found" >&2; exit 1; }
done
cleanup=""
if [ -z "$dir" ]; then
	dir=$(mktemp -d)
	cleanup=$dir
fi
node_pids=()
# shellcheck source=perf/hw/hugepages.sh
. "$(dirname "$0")/hw/hugepages.sh"
stop_nodes() { for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap 'huge_restore; stop_nodes; rm -f "$dir"/fio.dat "$dir"/nvme[0-9]*.dat; [ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

huge=0
if huge_reserve 64; then huge=1; else echo "nvme-node-compare: no huge-page fio runs: $huge_why" >&2; fi

fio_run() { # name rw bs iodepth [extra fio options]
	fio --name="$1" --filename="$dir/fio.dat" --size=2G --ioengine=io_uring --direct=1 \
		--rw="$2" --bs="$3" --iodepth="$4" --runtime="$secs" --time_based "${@:5}" \
		--lat_percentiles=1 --output-format=json 2>/dev/null
}
fio_run lay write 1M 16 >/dev/null # lay the file out so reads touch the device
# fio_val JQ NAME RW BS QD [options]: one fio figure, tried twice; empty
# (and the reason on stderr) when fio fails both times, say because another
# script changed vm.nr_hugepages under --iomem=shmhuge. An empty figure
# leaves its round out of the medians and ratios.
fio_val() {
	local q=$1 out v
	shift
	for _ in 1 2; do
		[[ " $* " == *" --iomem=shmhuge "* ]] && { huge_ensure 64 || true; }
		out=$(fio_run "$@" || true)
		if v=$(jq -e "$q" <<<"$out" 2>/dev/null) && [ -n "$v" ]; then
			echo "$v"
			return
		fi
	done
	echo "nvme-node-compare: fio $1 failed: $(head -c 300 <<<"$out")" >&2
}

# One node per binary, each on its own tier file, up for the whole run.
addrs=()
for i in "${!bins[@]}"; do
	"${bins[$i]}" node --listen 127.0.0.1:0 --dram 1GiB --nvme "$dir/nvme$i.dat:4GiB" >"$dir/node$i.out" 2>"$dir/node$i.err" &
	node_pids+=($!)
	for _ in $(seq 100); do grep -q 'serving on' "$dir/node$i.out" && break; sleep 0.1; done
	addr=$(sed -n 's/.*serving on \([^ ]*\).*/\1/p' "$dir/node$i.out")
	[ -n "$addr" ] || { cat "$dir/node$i.err" >&2; exit 1; }
	addrs+=("$addr")
done

bench() { # node-index tier op size conns keys
	"${bins[$1]}" bench --addr "${addrs[$1]}" --tier "$2" --op "$3" --size "$4" --conns "$5" --keys "$6" \
		--duration "${secs}s" --warmup 1s --json
}

# cpu_ticks PID: the process's user + system CPU time, in clock ticks.
cpu_ticks() {
	local f
	read -r -a f <"/proc/$1/stat"
	echo $((f[13] + f[14]))
}
clk_tck=$(getconf CLK_TCK)
# bench_cpu JQ node-index bench-args: one bench() figure (JQ of its
# output) on stdout, and on fd 3 the node's CPU time per operation (us)
# over the measured seconds: the node's /proc stat is sampled every 0.1 s
# during the run, and the rate between the sample nearest the measurement's
# start and the last one is divided by the run's ops/s (the preload and
# warm-up before are left out).
bench_cpu() {
	local q=$1 i=$2 samples=$dir/cpu.samples out end sp
	shift 2
	(while :; do
		echo "$EPOCHREALTIME $(cpu_ticks "${node_pids[$i]}")"
		sleep 0.1
	done) >"$samples" &
	sp=$!
	out=$(bench "$i" "$@")
	end=$EPOCHREALTIME
	kill "$sp" 2>/dev/null
	wait "$sp" 2>/dev/null || true
	jq "$q" <<<"$out"
	# The measured seconds as the run reports them (duration_s: less than
	# SECONDS when it ended early), not the seconds asked for.
	awk -v end="$end" -v secs="$(jq .duration_s <<<"$out")" -v ops="$(jq .ops_per_sec <<<"$out")" -v tck="$clk_tck" '
		$1 <= end - secs || n == 0 { t0 = $1; c0 = $2 }
		{ t1 = $1; c1 = $2; n++ }
		END { if (t1 > t0 && ops > 0) printf "%.2f\n", (c1 - c0) / tck / (t1 - t0) / ops * 1e6 }' "$samples" >&3
}

# Figures go to $dir/figs, one "CELL VALUE" line per measurement and round.
figs=$dir/figs
: >"$figs"
put() { # CELL VALUE; a failed run ("" or null) is kept as an empty figure
	local v=$2
	[[ $v == null ]] && v=""
	echo "$1 $v" >>"$figs"
}
# order: the binaries' indices for this round, rotated by one each round
# so that none is always measured first (right after fio) or last.
order() { for k in "${!bins[@]}"; do echo $(((k + r - 1) % ${#bins[@]})); done; }
# The cells of one round: each fio cell, then the matching node cells.
round1m() {
	if ((huge)); then
		put fio1mh "$(fio_val '.jobs[0].read.bw_bytes / 1e6' rr1mh randread 1M 8 --iomem=shmhuge)"
	fi
	((plain)) && put fio1m "$(fio_val '.jobs[0].read.bw_bytes / 1e6' rr1m randread 1M 8)"
	# Each node's DRAM 1 MiB GET right after its NVMe one: the same
	# node, generator and connections, the value already in memory.
	for i in $(order); do
		put "get1m.$i" "$(bench "$i" nvme get 1MiB 8 2048 | jq .mb_per_sec)"
		put "dram1m.$i" "$(bench "$i" dram get 1MiB 8 256 | jq .mb_per_sec)"
	done
	if ((loopback)); then
		put loop "$("${bins[0]}" bench --loopback --duration "${secs}s" --warmup 1s --json | jq .mb_per_sec)"
	fi
}
round4k() {
	if ((huge)); then
		put fio4kh "$(fio_val '.jobs[0].read.iops' rr32h randread 4k 32 --iomem=shmhuge)"
	fi
	((plain)) && put fio4k "$(fio_val '.jobs[0].read.iops' rr32 randread 4k 32)"
	local v
	for i in $(order); do
		v=$(bench_cpu .ops_per_sec "$i" nvme get 4KiB 32 100000 3>"$dir/cpu.out")
		put "get4k.$i" "$v"
		put "cpu4k.$i" "$(<"$dir/cpu.out")"
		# The same node's DRAM 4 KiB GET right after: the same generator,
		# connections and keys' spread, no device.
		v=$(bench_cpu .ops_per_sec "$i" dram get 4KiB 32 100000 3>"$dir/cpu.out")
		put "dram4k.$i" "$v"
		put "dcpu4k.$i" "$(<"$dir/cpu.out")"
	done
}
roundp50() {
	put fiop50 "$(fio_val '.jobs[0].read.lat_ns.percentile["50.000000"] / 1e3' rr1 randread 4k 1)"
	for i in $(order); do
		put "p50nvme.$i" "$(bench "$i" nvme get 4KiB 1 100000 | jq .p50_us)"
		put "p50dram.$i" "$(bench "$i" dram get 4KiB 1 10000 | jq .p50_us)"
	done
}
for r in $(seq "$rounds"); do
	echo "nvme-node-compare: round $r of $rounds" >&2
	want 1m && round1m
	want 4k && round4k
	want p50 && roundp50
done

# vals CELL: the cell's figures, one a line, in round order.
vals() { awk -v c="$1" '$1 == c { print $2 }' "$figs"; }
# median: of the numbers on stdin (empty lines, failed runs, left out).
median() { { grep . || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# row LABEL OURS-CELL LIMIT-CELL NOTE: medians of ours and of the limit, and
# the median (min-max) of the per-round ratios; a missing limit shows n/a.
row() {
	local o f
	o=$(vals "$2" | median)
	f=$(vals "$3" | median)
	paste <(vals "$2") <(vals "$3") | awk -F '\t' -v l="$1" -v o="$o" -v f="$f" -v n="$4" '
		$1 != "" && $2 != "" && $2 != 0 { r[++k] = $1 / $2 }
		END {
			if (k == 0) { printf "%-52s %10.1f %10s %8s %11s  %s\n", l, o, "n/a", "n/a", "", n; exit }
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
			m = (k % 2) ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2
			printf "%-52s %10.1f %10.1f %8.2f %5.2f-%-5.2f  %s\n", l, o, f, m, r[1], r[k], n }'
}
# The p50 limit is fio's QD1 p50 plus the DRAM GET's, per round.
p50row() { # node-index label
	paste <(vals "p50nvme.$1") <(vals fiop50) <(vals "p50dram.$1") | awk -F '\t' -v l="$2" '
		$1 != "" && $2 != "" && $3 != "" && $2 + $3 > 0 { o[++k] = $1; q[k] = $2; d[k] = $3; r[k] = $1 / ($2 + $3) }
		END {
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) {
				if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
				if (o[j] < o[i]) { t = o[i]; o[i] = o[j]; o[j] = t }
				if (q[j] + d[j] < q[i] + d[i]) { t = q[i]; q[i] = q[j]; q[j] = t; t = d[i]; d[i] = d[j]; d[j] = t }
			}
			h = int((k + 1) / 2)
			printf "%-52s %10.1f %10.1f %8.2f %5.2f-%-5.2f  (target <= 1.20; fio QD1 %.1f + DRAM GET %.1f)\n", l, o[h], q[h] + d[h], r[h], r[1], r[k], q[h], d[h] }'
}
echo "dir: $dir, ${secs}s per measurement (time-based), $rounds rounds alternating fio and node cells;" \
	"medians, ratio = median of per-round ratios (min-max); fio hugepages = --iomem=shmhuge${huge_why:+ (not run: $huge_why)}"
printf "%-52s %10s %10s %8s %11s\n" measurement ours limit ratio range
for i in "${!bins[@]}"; do
	((${#bins[@]} > 1)) && echo "== ${bins[$i]}"
	if want 1m; then
		row "1 MiB GET from NVMe tier, MB/s vs fio hugepages" "get1m.$i" fio1mh "(target >= 0.90; randread QD8, the fair limit)"
		((plain)) && row "1 MiB GET from NVMe tier, MB/s vs fio 4 KiB pages" "get1m.$i" fio1m "(fio's default buffers, for history)"
		row "1 MiB GET from NVMe tier, MB/s vs DRAM 1 MiB GET" "get1m.$i" "dram1m.$i" "(same node, 8 conns: the send's limit)"
		((loopback)) && row "1 MiB GET from NVMe tier, MB/s vs loopback stream" "get1m.$i" loop "(one TCP stream over 127.0.0.1)"
		row "1 MiB GET from DRAM tier, MB/s vs fio hugepages" "dram1m.$i" fio1mh "(network path against device; >= 1: device binds)"
	fi
	if want 4k; then
		row "4 KiB GET 32 conns, ops/s vs fio QD32 hugepages" "get4k.$i" fio4kh "(target >= 0.70)"
		row "4 KiB GET 32 conns, node CPU us per GET" "cpu4k.$i" none "(the node's user + system time / GETs)"
		row "4 KiB GET 32 conns from NVMe vs DRAM 4 KiB GET" "get4k.$i" "dram4k.$i" "(same node, 32 conns: the network path's limit)"
		row "4 KiB GET 32 conns, DRAM tier vs fio QD32 hugepages" "dram4k.$i" fio4kh "(network path against device; < 0.70: no device read can meet the target here)"
		row "4 KiB GET 32 conns, DRAM tier, node CPU us per GET" "dcpu4k.$i" none "(the NVMe GET's CPU less this: the device path's)"
		((plain)) && row "4 KiB GET 32 conns, ops/s vs fio QD32 4 KiB pages" "get4k.$i" fio4k "(fio's default buffers)"
	fi
	if want p50; then p50row "$i" "4 KiB GET p50 from NVMe tier, us"; fi
	((i > 0)) || continue
	# Against the first binary, round by round (both measured after the
	# same fio cell).
	if want 1m; then row "1 MiB GET from NVMe tier, MB/s vs ${bins[0]}" "get1m.$i" get1m.0 "(this binary / the first)"; fi
	if want 4k; then
		row "4 KiB GET 32 conns, ops/s vs ${bins[0]}" "get4k.$i" get4k.0 "(this binary / the first)"
		row "4 KiB GET 32 conns, CPU per GET vs ${bins[0]}" "cpu4k.$i" cpu4k.0 "(this binary / the first; lower is better)"
	fi
done
