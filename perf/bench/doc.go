// Package bench is the load generator of the project: it drives one of our
// storage nodes, a Redis server (RESP), a memcached server (meta protocol)
// or the echo server of package perf/echo with the very same loop, so they
// are compared on equal terms, and reports throughput and latency
// percentiles from an HDR-style histogram.
//
// # The generator
//
// One goroutine per connection. Each iteration buffers Pipeline requests on
// random keys of the keyspace, writes them in one Flush, then reads the
// Pipeline responses. A request's latency is the time its response was read
// minus the time the batch started to be written, so with pipelining it
// includes queueing behind the earlier requests of its batch, as a client
// would see it. Nothing is allocated per request: keys are formatted once,
// the value buffer is shared read-only, each connection owns its histogram,
// and the drivers reuse their buffers, so the client's share of a two-core
// machine shared with the server is little more than its system calls.
//
// Only batches that start after the warm-up and before the end of the run
// are measured; throughput is the measured operations over Duration.
//
// # Fairness on a small machine
//
// The generator shares the machine's cores with the server it measures. At
// 50 connections without pipelining it spends about one core, nearly all of
// it in the kernel (a write and a read per request on each connection), so
// a server that needs more than the remaining core is measured below its
// capacity; both stores are measured under the same handicap. Run with
// GOMAXPROCS=1 to cap the generator's user-space share.
//
// # Drivers
//
// RESPDialer drives Redis with GET and SET (package perf/resp);
// MemcacheDialer drives memcached with mg and ms; EchoDialer drives the echo
// server, asking for replies of the sizes a node's would have;
// PocketDialer drives a storage node through client.Conn. All check every
// response: status, and for a get the value's length.
//
// # Command line and comparison
//
// Main is `pocket bench` (flags in ParseArgs; --echo-listen serves the echo
// server). Matrix lists the cells of the comparison; perf/bench-compare.sh
// runs each against our node, Redis and memcached, the small-request cells
// also against the echo server, and WriteComparison prints the Markdown
// table from the JSON results: ours against each peer and as a share of the
// limits (echo server, loopback TCP).
package bench
