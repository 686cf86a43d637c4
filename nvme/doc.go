// Package nvme is direct-I/O device access for the NVMe tier: a block
// device (/dev/nvme0n1) or a file opened with O_DIRECT, its alignment probed
// (statx STATX_DIOALIGN, BLKSSZGET, BLKGETSIZE64) rather than assumed,
// transfers through a small io_uring binding of our own (with a pread/pwrite
// fallback behind a feature probe), an extent allocator, and aligned buffers
// from a BufferSource (the node's DRAM arena, or MmapBuffers).
//
// # Concurrency
//
// A Device is safe for many goroutines. With io_uring, every goroutine
// publishes its submissions under one mutex; whoever finds nobody in the
// kernel submits everything published so far in one io_uring_enter, so
// concurrent transfers share system calls. One reaper goroutine waits for
// completions on an eventfd through the runtime poller and wakes each
// batch's goroutine; a batch alone in flight waits in the kernel itself
// instead. The number of transfers in flight is bounded by
// Options.QueueDepth in both engines: a blocking O_DIRECT call ties up an OS
// thread, so the fallback never runs more than QueueDepth at once.
//
// # Buffer lifetimes
//
// A buffer handed to Device.Do (ReadAt, WriteAt) is read or written by the
// kernel until the call returns, and not after. Buffers outside the Go heap
// (MmapBuffers, the slab arena) are what the package is built for; a Go heap
// buffer is pinned for the duration of the transfer. Buffers that lie in a
// RegionSource's regions use io_uring's registered-buffer operations.
//
// # Feature probes
//
// ProbeUring and ProbeDirectIO run once and cache their answer; failures
// match ErrNotSupported so callers and tests can fall back or skip.
package nvme
