// Package blkbpf measures block I/O latency per device with eBPF: the time
// from block:block_rq_issue (the driver is handed a request) to
// block:block_rq_complete (the device finished it), bucketed in log2
// nanosecond slots per device and per operation (read, write, flush,
// discard, other). It is the kernel's view of device latency, below any
// queueing in the storage node, so the NVMe tier can be told apart from the
// node's own overhead.
//
// # How the program is built
//
// The two programs are written in Go with cilium/ebpf's asm package instead
// of BPF C compiled by clang and bpf2go. That needs no clang, no generated
// object files and no generate step: `go build` and CI work on a bare
// machine, and the program text is reviewed as Go. The price is that the
// programs stay small, which suits a histogram.
//
// They attach as raw tracepoints (BPF_RAW_TRACEPOINT_OPEN by name), not as
// classic tracepoints, because classic ones need tracefs mounted to look up
// the event id and are often unmounted in containers. A raw tracepoint gets
// the tracepoint's C arguments, here `struct request *rq`. The fields read
// from it (rq->cmd_flags, rq->q->disk->major and ->first_minor) are found
// by offset in the running kernel's BTF (/sys/kernel/btf/vmlinux) when the
// probe loads, and compiled into the instructions as constants: a hand-made
// CO-RE relocation. Reads go through bpf_probe_read_kernel, which fails
// safely on a bad pointer.
//
// # Maps (the layout is shared between the programs and Read)
//
// blk_start, LRU hash, in-flight requests:
//
//	key   u64  the struct request pointer
//	value u64  issue time, bpf_ktime_get_ns
//	      u32  device, kernel dev_t encoding: major<<20 | minor
//	      u32  operation class (Op)
//
// In-flight requests are keyed by the request pointer rather than by
// (device, sector), which the classic tracepoint tools must use because they
// never see the pointer: the pointer is unique while the request is in
// flight, so two requests to one sector (a write then a flush, or two
// partitions) cannot be confused, and the completion needs no extra reads.
// The LRU type drops entries for requests that never complete (requeued or
// failed before completion) instead of filling up.
//
// blk_hist, per-CPU hash, the histogram:
//
//	key   u32  device (as above)
//	      u16  operation class
//	      u16  slot: floor(log2(latency ns)), 0..63; SumSlot holds the
//	           sum of latencies in nanoseconds instead of a count
//	value u64  per CPU; Read adds the CPUs up
//
// Per-CPU values make the completion path free of shared cache lines; the
// counters only ever grow, so Read returns cumulative histograms and callers
// take differences between reads for an interval.
//
// # Support
//
// Supported probes once per process whether the programs can be loaded
// (root or CAP_BPF+CAP_PERFMON, BTF present, the struct fields found, the
// verifier accepting them) and caches the answer. Every failure wraps
// ErrNotSupported, so callers fall back and tests skip with
// errors.Is(err, ErrNotSupported).
package blkbpf
