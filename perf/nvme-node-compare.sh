#!/usr/bin/env bash
# Issue 4's node-level targets, in one run on one file system:
#   - 1 MiB GET from a node's NVMe tier over loopback (8 conns) against fio's
#     1 MiB sequential read bandwidth (io_uring, O_DIRECT, QD16) on a file
#     in the same directory;
#   - 4 KiB GET p50 from the NVMe tier (1 conn) against fio's 4 KiB random
#     read p50 at QD1 plus the DRAM tier's 4 KiB GET p50.
# usage: perf/nvme-node-compare.sh [POCKET_BIN] [DIR] [SECONDS]
# Needs fio and jq; installs nothing.
set -euo pipefail
bin=${1:-bin/pocket}
dir=${2:-}
secs=${3:-5}
for tool in fio jq "$bin"; do
	command -v "$tool" >/dev/null || { echo "nvme-node-compare: $tool not found" >&2; exit 1; }
done
cleanup=""
if [ -z "$dir" ]; then
	dir=$(mktemp -d)
	cleanup=$dir
fi
node_pid=""
trap '[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; [ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT

fio_run() { # name rw bs iodepth
	fio --name="$1" --filename="$dir/fio.dat" --size=1G --ioengine=io_uring --direct=1 \
		--rw="$2" --bs="$3" --iodepth="$4" --runtime="$secs" --time_based \
		--lat_percentiles=1 --output-format=json 2>/dev/null
}
fio_run lay write 1M 16 >/dev/null # lay the file out so reads touch the device
fio_seq_read=$(fio_run seqr read 1M 16 | jq '.jobs[0].read.bw_bytes / 1e6')
fio_p50_qd1=$(fio_run rr1 randread 4k 1 | jq '.jobs[0].read.lat_ns.percentile["50.000000"] / 1e3')
rm -f "$dir/fio.dat"

"$bin" node --listen 127.0.0.1:0 --dram 1GiB --nvme "$dir/nvme.dat:4GiB" >"$dir/node.out" 2>"$dir/node.err" &
node_pid=$!
for _ in $(seq 100); do grep -q 'serving on' "$dir/node.out" && break; sleep 0.1; done
addr=$(sed -n 's/.*serving on \([^ ]*\).*/\1/p' "$dir/node.out")
[ -n "$addr" ] || { cat "$dir/node.err" >&2; exit 1; }

bench() { # tier op size conns keys
	"$bin" bench --addr "$addr" --tier "$1" --op "$2" --size "$3" --conns "$4" --keys "$5" \
		--duration "${secs}s" --warmup 1s --json
}
nvme_get_1m=$(bench nvme get 1MiB 8 2048 | jq .mb_per_sec)
nvme_get_4k_p50=$(bench nvme get 4KiB 1 100000 | jq .p50_us)
dram_get_4k_p50=$(bench dram get 4KiB 1 10000 | jq .p50_us)

echo "dir: $dir, ${secs}s per measurement"
printf "%-44s %10s %10s %8s\n" measurement ours limit ratio
awk -v o="$nvme_get_1m" -v f="$fio_seq_read" 'BEGIN { printf "%-44s %10.1f %10.1f %8.2f  (target >= 0.80)\n", "1 MiB GET from NVMe tier, MB/s vs fio read", o, f, o / f }'
awk -v o="$nvme_get_4k_p50" -v q="$fio_p50_qd1" -v d="$dram_get_4k_p50" 'BEGIN {
	l = q + d; printf "%-44s %10.1f %10.1f %8.2f  (target <= 1.20; fio QD1 %.1f + DRAM GET %.1f)\n", "4 KiB GET p50 from NVMe tier, us", o, l, o / l, q, d }'
