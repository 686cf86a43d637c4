// Package micro is Pocket's microbenchmark suite run on this machine
// (issue 6, item 2), so our numbers stand beside the Pocket paper's table
// and beside Redis measured in the same run:
//
//   - unloaded latency of 1 KiB put, get and lookup (one client, one
//     request at a time) for each store given: our DRAM tier, our NVMe
//     tier, Redis;
//   - one node's 1 KiB get throughput with 1 to N clients, each client
//     with its own connections, one request at a time each;
//   - small-request IOPS: many requests in flight at once.
//
// Pocket stores are driven through the SDK (package pocket), Redis through
// the workload package's RESP client, so both pay a real client's costs.
// The clients run in this process, on the same cores as the servers:
// absolute numbers say as much about the machine as about the stores.
//
// A Report is saved as JSON (compare runs over time), as Markdown tables
// and as PNG plots (gonum.org/v1/plot).
package micro
