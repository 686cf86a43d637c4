#!/usr/bin/env bash
# Compares the nvme package (through `pocket hw`) with fio on the same file,
# in the same run: 1 MiB sequential write and read at QD16, 4 KiB random
# reads at QD32 (IOPS) and QD1 (p50 latency). Both use O_DIRECT and io_uring,
# and fio runs time-based (--time_based --runtime), as `pocket hw` does.
#
# fio runs each measurement with its default buffers (4 KiB pages) and again
# with huge-page buffers (--iomem=shmhuge), with and without registered
# buffers (--fixedbufs). The huge-page rows are the fair limit: the nvme
# package's buffers are huge pages, so a 1 MiB request is a few
# scatter-gather segments, where fio's default buffers make it 256. Against
# the default run our 1 MiB sequential I/O looked 2.4-2.9x faster than the
# device; against --iomem=shmhuge it is below it. The script reserves 64 huge
# pages (vm.nr_hugepages; needs root) and restores the old value on exit;
# without root the huge-page rows say n/a and why.
#
# usage: perf/hw/fio-compare.sh [POCKET_BIN] [FILE] [SIZE] [SECONDS]
#   e.g. sudo perf/hw/fio-compare.sh bin/pocket /mnt/nvme/hw.dat 4GiB 10
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
# shellcheck source=perf/hw/hugepages.sh
. "$(dirname "$0")/hugepages.sh"
trap 'huge_restore; [ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
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
# fio_figure KEY rw bs iodepth [extra fio options]: one fio run, printing
# the bandwidth in MB/s (KEY bw), IOPS (iops) or total-latency p50 in us
# (p50: submission to completion, which is what pocket hw times; fio's clat
# leaves out the submission).
fio_figure() {
	local key=$1 dir=read
	shift
	[[ $1 == *write ]] && dir="write"
	local out
	out=$(fio_run "fc-$key" "$@") || { echo 0; return; }
	case $key in
	bw) jq ".jobs[0].$dir.bw_bytes / 1e6" <<<"$out" ;;
	iops) jq ".jobs[0].$dir.iops" <<<"$out" ;;
	p50) jq ".jobs[0].$dir.lat_ns.percentile[\"50.000000\"] / 1e3" <<<"$out" ;;
	esac
}
# Each measurement: plain buffers; --fixedbufs (nvme registers its buffers,
# READ_FIXED/WRITE_FIXED); and the same two with huge-page buffers.
declare -A fio
measure() { # name key rw bs iodepth
	local name=$1
	shift
	fio[$name]=$(fio_figure "$@")
	fio[$name.fixed]=$(fio_figure "$@" --fixedbufs)
	if [[ -z $huge_why ]]; then
		fio[$name.huge]=$(fio_figure "$@" --iomem=shmhuge)
		fio[$name.huge.fixed]=$(fio_figure "$@" --iomem=shmhuge --fixedbufs)
	fi
}
huge_reserve 64 || echo "fio-compare: no huge-page runs: $huge_why" >&2
measure seqw bw write 1M 16
measure seqr bw read 1M 16
measure rr32 iops randread 4k 32
measure rr1 p50 randread 4k 1
huge_restore

p=${file}.pocket.json
row() { # label unit fio pocket
	awk -v l="$1" -v u="$2" -v f="$3" -v p="$4" 'BEGIN {
		if (f == "") { printf "%-40s %12s %12.1f %8s  %s\n", l, "n/a", p, "n/a", u; exit }
		printf "%-40s %12.1f %12.1f %8.2f  %s\n", l, f, p, (f > 0 ? p / f : 0), u }'
}
rows() { # label name unit pocket
	row "$1" "$3" "${fio[$2]}" "$4"
	row "$1, fio --fixedbufs" "$3" "${fio[$2.fixed]}" "$4"
	row "$1, fio hugepages" "$3" "${fio[$2.huge]:-}" "$4"
	row "$1, fio hugepages fixed" "$3" "${fio[$2.huge.fixed]:-}" "$4"
}
echo "file: $file ($size), ${secs}s per run (time-based), engine $(jq -r .engine "$p"), alignment $(jq .align "$p")"
echo "fio hugepages = --iomem=shmhuge (2 MiB pages, the fair limit${huge_why:+; not run: $huge_why})"
printf "%-40s %12s %12s %8s  %s\n" measurement fio pocket ratio unit
rows "seq write 1 MiB QD16" seqw "MB/s" "$(jq .seq_write_mb_per_sec "$p")"
rows "seq read 1 MiB QD16" seqr "MB/s" "$(jq .seq_read_mb_per_sec "$p")"
rows "rand read 4 KiB QD32" rr32 "IOPS" "$(jq .rand_read_4k_iops_qd32 "$p")"
rows "rand read 4 KiB QD1 p50" rr1 "us (lower is better)" "$(jq .rand_read_4k_p50_us_qd1 "$p")"
rm -f "$p" "${file}.pocket.log"
