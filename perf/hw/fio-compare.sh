#!/usr/bin/env bash
# Compares the nvme package (through `pocket hw`) with fio on the same file,
# in the same run: 1 MiB sequential write and read at QD16, 4 KiB random
# reads at QD32 (IOPS) and QD1 (p50 latency). Both use O_DIRECT and io_uring.
#
# usage: perf/hw/fio-compare.sh [POCKET_BIN] [FILE] [SIZE] [SECONDS]
#   POCKET_BIN  default bin/pocket (make build)
#   FILE        default a file in a fresh directory under $TMPDIR (must be a
#               file system that accepts O_DIRECT; tmpfs may not)
#   SIZE        default 1GiB
#   SECONDS     per measurement, default 3
# Needs fio and jq. Prints one table with both figures and their ratio.
set -euo pipefail
bin=${1:-bin/pocket}
file=${2:-}
size=${3:-1GiB}
secs=${4:-3}
for tool in fio jq "$bin"; do
	command -v "$tool" >/dev/null || { echo "fio-compare: $tool not found" >&2; exit 1; }
done
cleanup=""
if [ -z "$file" ]; then
	dir=$(mktemp -d)
	cleanup=$dir
	file=$dir/hw.dat
fi
trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
fiosize=${size/iB/}    # fio reads 1G as 1 GiB
fiosize=${fiosize/B/}

# pocket hw first: it creates the file and writes it end to end.
"$bin" hw --path "$file" --size "$size" --duration "${secs}s" --depths 1,32 \
	--skip-network --skip-dram --json >"${file}.pocket.json" 2>"${file}.pocket.log" ||
	{ cat "${file}.pocket.log" >&2; exit 1; }

fio_run() { # name rw bs iodepth [extra fio options]
	fio --name="$1" --filename="$file" --size="$fiosize" --ioengine=io_uring --direct=1 \
		--rw="$2" --bs="$3" --iodepth="$4" --runtime="$secs" --time_based "${@:5}" \
		--lat_percentiles=1 --output-format=json 2>/dev/null
}
fio_seq_write=$(fio_run seqw write 1M 16 | jq '.jobs[0].write.bw_bytes / 1e6')
fio_seq_read=$(fio_run seqr read 1M 16 | jq '.jobs[0].read.bw_bytes / 1e6')
# nvme registers its buffers (READ_FIXED/WRITE_FIXED); fio does so only
# with --fixedbufs, so the sequential rows show fio both ways.
fio_seq_write_fixed=$(fio_run seqwf write 1M 16 --fixedbufs | jq '.jobs[0].write.bw_bytes / 1e6')
fio_seq_read_fixed=$(fio_run seqrf read 1M 16 --fixedbufs | jq '.jobs[0].read.bw_bytes / 1e6')
fio_rand_qd32_fixed=$(fio_run rr32f randread 4k 32 --fixedbufs | jq '.jobs[0].read.iops')
fio_rand_qd32=$(fio_run rr32 randread 4k 32 | jq '.jobs[0].read.iops')
# Total latency (submission to completion), which is what pocket hw times;
# fio's clat leaves out the submission.
fio_p50_qd1=$(fio_run rr1 randread 4k 1 | jq '.jobs[0].read.lat_ns.percentile["50.000000"] / 1e3')

p=${file}.pocket.json
row() { # label unit fio pocket
	awk -v l="$1" -v u="$2" -v f="$3" -v p="$4" 'BEGIN {
		printf "%-28s %12.1f %12.1f %8.2f  %s\n", l, f, p, (f > 0 ? p / f : 0), u }'
}
echo "file: $file ($size), ${secs}s per run, engine $(jq -r .engine "$p"), alignment $(jq .align "$p")"
printf "%-28s %12s %12s %8s  %s\n" measurement fio pocket ratio unit
row "seq write 1 MiB QD16" "MB/s" "$fio_seq_write" "$(jq .seq_write_mb_per_sec "$p")"
row "seq write 1 MiB QD16 fixed" "MB/s (fio --fixedbufs)" "$fio_seq_write_fixed" "$(jq .seq_write_mb_per_sec "$p")"
row "seq read 1 MiB QD16" "MB/s" "$fio_seq_read" "$(jq .seq_read_mb_per_sec "$p")"
row "seq read 1 MiB QD16 fixed" "MB/s (fio --fixedbufs)" "$fio_seq_read_fixed" "$(jq .seq_read_mb_per_sec "$p")"
row "rand read 4 KiB QD32" "IOPS" "$fio_rand_qd32" "$(jq .rand_read_4k_iops_qd32 "$p")"
row "rand read 4 KiB QD32 fixed" "IOPS (fio --fixedbufs)" "$fio_rand_qd32_fixed" "$(jq .rand_read_4k_iops_qd32 "$p")"
row "rand read 4 KiB QD1 p50" "us (lower is better)" "$fio_p50_qd1" "$(jq .rand_read_4k_p50_us_qd1 "$p")"
rm -f "$p" "${file}.pocket.log"
