// Package dataplane is the storage node: it serves the data-plane protocol
// of package wire on the event loops of package netio and keeps values in
// tiers.
//
// # Requests
//
// Node.OnData parses the frames of a read in place (dispatch.go), verifies
// each request's flatbuffer, checks the capability token and map epoch
// (guard.go) and serves it (ops.go). A put's payload is received straight
// into the tier's buffers: what the read already holds is copied, the rest
// is read from the socket into them by a sink (sinks.go). A get's value is
// copied into the output queue when small and handed to writev by
// reference when large, so its bytes go from the tier to the socket
// without another copy. Listings and prefix deletes, whose work grows
// with the job's keys, run on the node's scan lane (lane.go), one
// goroutine apart from the loops, and answer from the loop when done.
//
// # Shares
//
// What one client may hold of a node is counted per owner (owner.go):
// the tenant or client address the controller's table names as the job's
// owner, else the job. Proven connection slots, the scan lane's turns and
// queue room, the bound on unfinished puts, the version table's shares
// and the NVMe tier's key index and read staging shares all count an
// owner's jobs together, so registering more jobs gets an owner no more
// of them. Each job's own usage is still counted, for its drop.
//
// # Tiers
//
// A Tier (tier.go) stores values by job and key. One test suite
// (package tiertest) runs against every implementation:
//
//   - DRAM (dram.go, dramindex.go): one slab arena of huge pages (package
//     slab). Each value's first chunk starts with a record (header, key,
//     then the value or the list of its chunks); an off-heap open-addressing
//     table per job shard maps key hashes to records. Nothing per value
//     lives on the Go heap.
//   - NVMe (nvme.go): extents on a device or file opened with O_DIRECT
//     (package nvme). Its calls block, so the node runs them on workers,
//     or on the loop when nothing else is waiting.
//   - Faulty (faulty.go): a wrapper that injects failures, for tests.
//
// # Cache misses
//
// With many keys, the misses of a lookup (the index slot, then the record)
// dominate a small get. Before serving a read, the node peeks at up to 16
// of its keys and the DRAM tier prefetches their slots and records, so the
// misses of pipelined requests overlap (prefetch.go).
//
// # Lifetimes
//
// Job and key slices passed to a tier are only read during the call. The
// buffers of a Pending are valid until Commit or Abort, the segments of a
// Value until Release; a Value keeps its bytes even if the key is
// overwritten or deleted meanwhile.
package dataplane
