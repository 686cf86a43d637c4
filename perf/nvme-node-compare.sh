#!/usr/bin/env bash
# A node's NVMe tier against the device limit, in one run on one file system
# (issues 4 and 16):
#   - 1 MiB GET from a node's NVMe tier over loopback (8 conns) against fio's
#     1 MiB sequential read bandwidth (io_uring, O_DIRECT, QD16) on a file in
#     the same directory: with fio's default buffers (4 KiB pages) and with
#     huge-page buffers (--iomem=shmhuge), the fair limit (target >= 0.9x);
#   - 4 KiB GETs from the NVMe tier with 32 conns (ops/s) against fio's 4 KiB
#     random read IOPS at QD32, both buffer kinds (target >= 0.7x);
#   - 4 KiB GET p50 from the NVMe tier (1 conn) against fio's 4 KiB random
#     read p50 at QD1 plus the DRAM tier's 4 KiB GET p50 (target <= 1.2x).
# fio runs time-based (--time_based --runtime), like `pocket bench`.
#
# Why both fio runs: fio's default buffers are 4 KiB pages, so each 1 MiB
# request carries 256 scatter-gather segments, where the node's buffers are
# huge pages. Against that run the node once looked 1.70x "faster than fio";
# against --iomem=shmhuge it reached 0.68x. The script reserves 64 huge pages
# (vm.nr_hugepages; needs root) for fio and restores the old value on exit;
# without root the huge-page limit shows n/a and why.
#
# usage: perf/nvme-node-compare.sh [POCKET_BIN] [DIR] [SECONDS]
#   e.g. sudo perf/nvme-node-compare.sh bin/pocket /mnt/nvme 10
#   POCKET_BIN default bin/pocket (make build); DIR default a temp dir (must
#   accept O_DIRECT: not tmpfs); SECONDS per measurement, default 5.
# Needs fio and jq; installs nothing. Run it on a quiet machine: the node and
# the generator share the cores.
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
# shellcheck source=perf/hw/hugepages.sh
. "$(dirname "$0")/hw/hugepages.sh"
trap 'huge_restore; [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; [ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fio_run() { # name rw bs iodepth [extra fio options]
	fio --name="$1" --filename="$dir/fio.dat" --size=1G --ioengine=io_uring --direct=1 \
		--rw="$2" --bs="$3" --iodepth="$4" --runtime="$secs" --time_based "${@:5}" \
		--lat_percentiles=1 --output-format=json 2>/dev/null
}
fio_run lay write 1M 16 >/dev/null # lay the file out so reads touch the device
fio_seq_read=$(fio_run seqr read 1M 16 | jq '.jobs[0].read.bw_bytes / 1e6')
fio_iops_qd32=$(fio_run rr32 randread 4k 32 | jq '.jobs[0].read.iops')
fio_p50_qd1=$(fio_run rr1 randread 4k 1 | jq '.jobs[0].read.lat_ns.percentile["50.000000"] / 1e3')
fio_seq_read_huge="" fio_iops_qd32_huge=""
if huge_reserve 64; then
	fio_seq_read_huge=$(fio_run seqrh read 1M 16 --iomem=shmhuge | jq '.jobs[0].read.bw_bytes / 1e6')
	fio_iops_qd32_huge=$(fio_run rr32h randread 4k 32 --iomem=shmhuge | jq '.jobs[0].read.iops')
	huge_restore
else
	echo "nvme-node-compare: no huge-page fio runs: $huge_why" >&2
fi
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
nvme_get_4k_c32=$(bench nvme get 4KiB 32 100000 | jq .ops_per_sec)
nvme_get_4k_p50=$(bench nvme get 4KiB 1 100000 | jq .p50_us)
dram_get_4k_p50=$(bench dram get 4KiB 1 10000 | jq .p50_us)

# row LABEL OURS LIMIT NOTE: one line; a missing limit shows n/a.
row() {
	awk -v l="$1" -v o="$2" -v f="$3" -v n="$4" 'BEGIN {
		if (f == "" || f == 0) { printf "%-50s %10.1f %10s %8s  %s\n", l, o, "n/a", "n/a", n; exit }
		printf "%-50s %10.1f %10.1f %8.2f  %s\n", l, o, f, o / f, n }'
}
echo "dir: $dir, ${secs}s per measurement (time-based); fio hugepages = --iomem=shmhuge${huge_why:+ (not run: $huge_why)}"
printf "%-50s %10s %10s %8s\n" measurement ours limit ratio
row "1 MiB GET from NVMe tier, MB/s vs fio hugepages" "$nvme_get_1m" "$fio_seq_read_huge" "(target >= 0.90; the fair limit)"
row "1 MiB GET from NVMe tier, MB/s vs fio 4 KiB pages" "$nvme_get_1m" "$fio_seq_read" "(fio's default buffers, for history)"
row "4 KiB GET 32 conns, ops/s vs fio QD32 hugepages" "$nvme_get_4k_c32" "$fio_iops_qd32_huge" "(target >= 0.70)"
row "4 KiB GET 32 conns, ops/s vs fio QD32 4 KiB pages" "$nvme_get_4k_c32" "$fio_iops_qd32" "(fio's default buffers)"
awk -v o="$nvme_get_4k_p50" -v q="$fio_p50_qd1" -v d="$dram_get_4k_p50" 'BEGIN {
	l = q + d; printf "%-50s %10.1f %10.1f %8.2f  (target <= 1.20; fio QD1 %.1f + DRAM GET %.1f)\n", "4 KiB GET p50 from NVMe tier, us", o, l, o / l, q, d }'
