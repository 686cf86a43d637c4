# shellcheck shell=bash disable=SC2034 # sourced: the caller reads huge_why
# Shared by the scripts that compare with fio (perf/hw/fio-compare.sh,
# perf/nvme-node-compare.sh): reserve 2 MiB huge pages for fio's
# --iomem=shmhuge buffers and give them back on exit. Source it, then:
#
#   huge_reserve PAGES   adds PAGES to vm.nr_hugepages (needs root) and
#                        remembers the old value; false, with the reason in
#                        $huge_why, when the pages cannot be had
#   huge_ensure PAGES    before each huge-page run: when fewer than PAGES
#                        huge pages are free (another script on the machine
#                        restored its own old value meanwhile), raises
#                        vm.nr_hugepages by the shortfall; false as above
#   huge_restore         writes the old value back (call it from the
#                        script's EXIT trap; harmless when nothing was
#                        reserved)
#
# Why: fio's default buffers are 4 KiB pages, so each 1 MiB request carries
# 256 scatter-gather segments, while the nvme package's buffers are huge
# pages (a few segments). Against plain fio, our 1 MiB sequential I/O looked
# 2.4-2.9x faster than the device allows; fio with --iomem=shmhuge on the
# same file is the fair limit. The scripts report both.

huge_sysctl=/proc/sys/vm/nr_hugepages
huge_old=""
huge_why=""

huge_reserve() {
	local want=$1 cur got
	if [[ ! -w $huge_sysctl ]]; then
		huge_why="$huge_sysctl is not writable (run as root to reserve huge pages)"
		return 1
	fi
	cur=$(<"$huge_sysctl")
	[[ -n $huge_old ]] || huge_old=$cur
	echo $((cur + want)) >"$huge_sysctl" 2>/dev/null || true
	got=$(<"$huge_sysctl")
	if ((got < cur + want)); then
		huge_why="asked for $want more huge pages, the kernel gave $((got - cur)) (memory too fragmented?)"
		huge_restore
		return 1
	fi
	return 0
}

# huge_free prints the huge pages nobody holds: free ones less those
# reserved (mapped by a process that has not touched them yet, such as a
# node's DRAM tier), which another mapping cannot have.
huge_free() {
	awk '/^HugePages_Free:/ { f = $2 } /^HugePages_Rsvd:/ { r = $2 } END { print f - r }' /proc/meminfo
}

huge_ensure() {
	local want=$1 free
	[[ -w $huge_sysctl ]] || return 1
	free=$(huge_free)
	((free >= want)) && return 0
	[[ -n $huge_old ]] || huge_old=$(<"$huge_sysctl")
	echo $(($(<"$huge_sysctl") + want - free)) >"$huge_sysctl" 2>/dev/null || true
	free=$(huge_free)
	((free >= want))
}

huge_restore() {
	[[ -n $huge_old ]] || return 0
	echo "$huge_old" >"$huge_sysctl" 2>/dev/null || true
	huge_old=""
}
