// Package hw measures the hardware a storage node runs on: its NVMe device
// (or a file standing in for one), the copy bandwidth of its DRAM arena and
// the bandwidth of one loopback TCP stream. `pocket hw` is a thin front end
// (Main); a node reports the resulting profile to the controller so that
// placement uses measured bandwidth rather than constants.
//
// # Measurements
//
// All device transfers go through package nvme (O_DIRECT, io_uring when the
// kernel has it) with buffers from the device's registered buffer source:
//
//   - sequential 1 MiB writes, then reads, at queue depth 16 (the writes
//     cover the measured region at least once, so no read is of a hole);
//   - 4 KiB random reads, then writes, at queue depths 1, 4, 16, 32 and 64,
//     each reporting IOPS and the p50 and p99 of per-transfer latency.
//
// Queue depth N is N goroutines each keeping one transfer in flight on the
// shared Device, which is how the node's worker pool drives it. DRAM copy
// bandwidth is a single-threaded copy of 64 MiB between buffers of the slab
// arena; loopback bandwidth is one TCP stream on 127.0.0.1 (perf/bench).
//
// # Profile file format
//
// A device profile is one JSON object (UTF-8, no comments):
//
//	{
//	  "version": 1,                      // format version; readers refuse others
//	  "host": "node-a",                  // os.Hostname of the measuring host
//	  "measured_at": "2026-11-25T22:00:00Z",
//	  "report": {                        // Report, field names below
//	    "path": "/dev/nvme0n1", "size_bytes": 1073741824,
//	    "engine": "io_uring", "align": 512,
//	    "seq_write_mb_per_sec": 2900.5,  // MB = 10^6 bytes
//	    "seq_read_mb_per_sec": 1400.1,
//	    "rand_read_4k_iops_qd32": 71000,
//	    "rand_read_4k_p50_us_qd1": 42.1,
//	    "rand_read_4k": [{"qd": 1, "iops": 16000, "p50_us": 42.1, "p99_us": 80}, ...],
//	    "rand_write_4k": [...],
//	    "dram_copy_gb_per_sec": 9.8,     // GB = 10^9 bytes
//	    "loopback_tcp_mb_per_sec": 3500
//	  }
//	}
//
// Unknown fields are ignored so that newer tools can add measurements;
// ReadProfile checks the version and that every rate is finite and not
// negative. A node loads it with ReadProfile and sends the rates with its
// registration.
package hw
