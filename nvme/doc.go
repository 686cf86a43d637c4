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
// Device.Start begins a batch without waiting (io_uring only; it declines,
// and the caller uses Do, when the ring has no free slot): its done runs on
// the goroutine that reaps the completion, so an event loop can start a
// read and have the completion posted straight back to it. A batch started
// with submit false stays queued until Flush (or any later submission), so
// the reads a loop starts in one pass of its events go to the kernel in one
// io_uring_enter, and one virtio doorbell, as fio's resubmissions do.
//
// # Where a GET's time goes (issue 16, measured on a 2-core VM)
//
// Setup: pocket node --nvme on a file on ext4 over a virtio disk
// (max_sectors_kb 4096, mq-deadline), pocket bench --tier nvme on the same
// machine, fio (io_uring, O_DIRECT, --iomem=shmhuge) on a file beside it,
// alternating in one run; the machine was shared with other builds and tests
// (load 10-18), so single figures swing by 2x and only side-by-side ratios
// and per-request costs mean much.
//
//   - Device requests: /proc/diskstats shows one device read per GET (0.96
//     to 1.03 reads per GET) of the value's size (1006-1024 KiB average for
//     1 MiB values, 4.0 KiB for 4 KiB): a 1 MiB read is not split. Cutting
//     it into 4 x 256 KiB transfers in one batch gains nothing: the block
//     layer merges them back into one 1 MiB request.
//   - Buffers and copies: reads land in the node's staging region (this
//     package's MmapBuffers, MADV_HUGEPAGE, registered, so READ_FIXED) and
//     go to writev by reference; the only copy is the kernel's into the
//     socket.
//   - The device: fio's 1 MiB random read gives 1.2-1.7 GB/s at any queue
//     depth (QD1 1666 MB/s at 514 us a read, QD8 1587 MB/s at 5.2 ms), so
//     queue depth is not the lever for 1 MiB. A 1 MiB GET is a device read
//     and then a 1 MiB send, in series per connection; the send alone (a
//     1 MiB DRAM GET, 8 conns) ran at 1897 MB/s beside fio's 1742. In a 1 MiB
//     NVMe GET run 60% of the node's CPU samples are writev (tcp_sendmsg,
//     _copy_from_iter 22%) and 12% this package. Reaching 0.9x of fio needs
//     the read of one value overlapped with the send of another on the same
//     connection, or of its own first chunk (streaming a value chunk by
//     chunk from the get path), which is the node's dispatch, not this
//     package. Running the read on the event loop when nothing else waits
//     (dataplane's inlineOK) matters: with it off, 1 MiB GETs fell from 1159
//     to 609 MB/s.
//   - 4 KiB GETs from 32 connections: the node spends 23-36 us of CPU per
//     GET against 6.7 us for a DRAM GET. In its samples io_uring submission
//     is 22-26% (the virtio doorbell, iowrite16, a VM exit, 10-11%), writev
//     15%, the runtime's sysmon 12-14% and the scheduler about 10%. This
//     package alone (BenchmarkRandRead4K, 32 goroutines) costs 8.9 us of
//     CPU per read against fio's 8.4 us at QD32, 1.3 system calls and 0.3
//     context switches per read: the rest is the node's path (hand-off to a
//     worker, Loop.Post back to the event loop, the reply) and the load
//     generator, on the same 2 cores as fio's single thread.
//   - Submission batching: combined submission (see Concurrency) took 0.9
//     io_uring_enter calls per read at 30K reads/s: completions, and so the
//     requests that follow them, arrive one at a time; fio resubmits what
//     it reaps in one call. Making the reaper wait on the runtime poller
//     instead of in io_uring_enter took 4 KiB GETs (32 conns) from 22-31K to
//     28-33K ops/s and 4 KiB GET p50 (1 conn) from 77-116 to 69-96 us, side
//     by side.
//   - Hand-offs and doorbells (perf/nvme-node-compare.sh, old and new
//     binary after the same fio cell, 3 rounds, 5 s cells, load 4-9): a
//     4 KiB GET at 32 conns on the worker path costs three goroutine
//     wake-ups (loop to worker, reaper to worker, worker to loop) and 0.95
//     io_uring_enter per GET; in its profile finish_task_switch is 25% of
//     the node's samples, iowrite16 (the doorbell's VM exit) 10% and
//     softirqs 8%. Starting the read on the event loop (dataplane's
//     getStart, Device.Start) with the completion posted straight back
//     alone changed little (29.7K against 30.3K ops/s, medians); with the
//     submissions of a pass batched (submit false, one Flush posted behind
//     the pass) io_uring_enter fell to 0.11 per GET and 4 KiB GETs rose
//     from 19.4/25.1/22.9K to 23.6/30.9/28.8K ops/s (round by round, +22 to
//     26%), 0.35x to 0.43x of fio's QD32 hugepage IOPS (72K). 1 MiB GETs
//     (8 conns): 1001 to 1201 MB/s (medians, 0.50x to 0.58x of fio's 1 MiB
//     random read at QD8, 2019 MB/s). A second run: 4 KiB 20.4/25.4/29.9K
//     to 26.9/30.3/26.6K, 1 MiB 1287/1198/1138 to 1327/1279/1274 MB/s. The
//     1-conn p50 runs on the event loop in both binaries (2 io_uring_enter
//     and no eventfd write per GET in both) and moved either way by 10-25%
//     between runs.
//   - What is left for 4 KiB: the node used 0.63 of a core and the
//     generator 0.34 at 27.7K GETs/s, 23 us of node CPU per GET against
//     6.7 us for a DRAM GET (which reaches 86-90K ops/s at 32 conns on the
//     same node, so the generator is not the limit); the other helpers'
//     load took the rest of the 2 cores. fio's QD32 IOPS are a single
//     thread with nothing else to do.
//   - CPU per 4 KiB GET, 32 conns (perf record -g on the node, perf stat,
//     /proc/diskstats; 34-47K GETs/s, busy machine): in the node's samples
//     io_uring submission is 20% (0.10 io_uring_enter per GET, about 29 us
//     each: the doorbell's VM exit and the block layer's dispatch of a
//     batch), writev 21% (0.94 per GET), finish_task_switch 24% (0.5
//     context switches per GET), the runtime's sysmon 12%, the size lookup
//     before OpenStart (NVMe.Stat's map miss) 5%, buffer alloc and free (the
//     Allocator's maps) 4.5%, GC 1.6%. The device is not what the GETs wait
//     for: its reads averaged 221 us at a device queue of 7.5 (41% busy)
//     while a GET's p50 was 616 us; the rest is the node and the generator
//     waiting for the 2 cores (node 0.58 of one).
//   - sysmon: with every P idle, Go 1.26's sysmon sleeps until a goroutine
//     enters a system call through syscall.Syscall, which wakes it (a futex)
//     and resets its period to 20 us; the node goes idle and back thousands
//     of times a second, so sysmon woke about 6K times a second (18.5K
//     nanosleeps in 3 s). RawSyscall for the calls that never block on
//     the hot path (netio's socket read, writev and eventfd read and
//     write; here the io_uring submission and the reaper's eventfd read)
//     took that to 1.6K and futex calls from 14.5K to 4.8K. Side by side
//     (perf/nvme-node-compare.sh, CELLS=4k, 7 rounds, load 1.6-3.7), all
//     of them with a stack of freed one-block buffers here (which skips the
//     Allocator's maps): node CPU per GET 0.87x (0.80-0.95, lower in 7 of 7
//     rounds), 23.2 -> 20.3 us, GETs/s 1.06x (0.82-1.25). The same run
//     without netio's calls: CPU 1.08x (0.90-1.24), GETs/s 0.96x
//     (0.81-1.23); the buffer stack alone, in two runs: CPU 0.99x and
//     1.13x, GETs/s 0.96x and 1.36x (ranges 0.76-2.32). Nothing was kept:
//     any Syscall made while sysmon sleeps wakes it, so the win needs
//     netio's calls too, and this package's share alone showed none. The
//     raw calls alone (netio's and these, no buffer stack), 7 more rounds
//     at load 2-3.7: CPU per GET 0.85x (0.74-1.11), 24.7 -> 22.2 us,
//     GETs/s 1.08x (0.79-2.12). Tidied (io_uring_enter raw only when it
//     does not wait for completions) and measured again with
//     perf/regress.sh beside it: CPU per GET 0.85x (0.70-1.02), 21.7 ->
//     18.4 us, GETs/s 1.11x (0.95-1.26), but a lone connection's 1 KiB
//     GET p50 2.9x to 5.8x worse, because sysmon's wake-ups were what kept
//     this VM's vCPUs out of halt between its requests (netio's doc,
//     "Where the time goes"). Not kept.
//   - Streaming (dataplane's getStream): with read and send in series, a
//     1 MiB GET run at 8 conns left the device idle 36% of the time
//     (/proc/diskstats io_ticks 2568 ms in 4 s, 1624 reads/s of 1 MiB)
//     and the machine's CPU 47% idle, at 1643 MB/s against fio's 2625:
//     neither the device nor the CPU was the limit, the per-connection
//     series was. 71% of the node's samples were writev (its copy 22%,
//     the loopback receive it runs in softirq 24%), 9% the runtime's
//     sysmon. A value over 256 KiB was then read in 256 KiB chunks, two
//     per stream at a time (since 65dea33 three reads and four chunks
//     held: "Reads that wait for sends" below), each sent as soon as it
//     and those before it are read. Four chunks started at once are merged by the block layer
//     into one 1 MiB request (diskstats: one read per GET) and complete
//     together, so nothing overlaps; two at a time stay 256 KiB requests
//     (fio: 256 KiB random reads at QD8 give 2356 MB/s, 512 KiB 2747, 1
//     MiB 2562, so small requests cost the device little). Single runs
//     of window x chunk, load 5-7: 2x256K 1822 and 1722 MB/s, 4x128K
//     1615, 3x256K 1458, 2x128K 1348, 2x512K 1238, series 1316 and 1171.
//     Side by side (perf/nvme-node-compare.sh, old and new binary, 3
//     rounds of 5 s, PLAIN=0): at load 1.9-4.7, 1343 -> 1930 MB/s, 0.50x
//     (0.48-0.65) -> 0.73x (0.64-0.76) of fio's hugepage QD8 random read
//     (2636 MB/s); in a second run at load 3.5-6.0, 1322 -> 1387 MB/s,
//     0.53x (0.47-0.58) -> 0.56x (0.51-0.72) of 2495 MB/s; in a third,
//     the new binary measured first in each round (load 4.6-5.2), 1477 ->
//     1844 MB/s, 0.53x (0.51-0.62) -> 0.66x (0.64-0.69) of 2690 MB/s.
//     With the other helpers' load taking the idle CPU the overlap has
//     less to win. With streaming the device was busy 80% of the time
//     (io_ticks 3340 ms in about 4.2 s) and the CPU still 36% idle, at
//     1806 MB/s.
//   - What is left for 1 MiB (0.56-0.73x of a 0.9x target): the node's
//     send itself, a 1 MiB DRAM GET at 8 conns, ran at 2100-2320 MB/s on
//     the same machine (load 4-7), under fio's 2500-2640, so the loopback
//     send (writev's copy, and the client's receive, on the same 2 cores)
//     is now as much the limit as the device. In the streamed run's
//     profile the chunk reads' submission (one io_uring_enter per chunk,
//     four per 1 MiB GET) is 15% of the node's samples and writev 57%;
//     queueing the stream's reads unsubmitted and flushing them behind the
//     loop's pass (as 4 KiB gets do) used less node CPU per GET (208
//     against 264 ticks in 4 s) and measured 0.60x (0.59-0.75) beside
//     0.56x in the second run above, but 0.64x (0.61-0.69) beside 0.65x
//     (0.54-0.67) when measured first: no gain shown, not done.
//   - The stream's chunk and window on a machine whose network is not the
//     limit (a quiet run, a 1 MiB DRAM GET at 8 conns 2.0x fio's QD8
//     hugepage random read, 7193 against 3456 MB/s; NVMe GET 0.75x):
//     five builds differing only in streamChunk x streamWindow, each after
//     the same fio cell in every round (perf/nvme-node-compare.sh,
//     CELLS=1m, 3 rounds of 5 s, PLAIN=0): against 256 KiB x 2 (2237 MB/s,
//     0.66x of fio), 256 KiB x 4 gave 0.83x (0.74-0.86) of its rate, 512
//     KiB x 2 0.87x, 512 KiB x 3 0.89x, and 1 MiB x 2 (a 1 MiB value read
//     whole, in series with its send) 0.84x. More bytes in flight per
//     stream did not fill the device better (why was not measured; four
//     chunks begun at once merge into one request, above). 256 KiB x 2
//     stayed, until reads stopped waiting for sends (below).
//   - The network's limit beside the device's (perf/nvme-node-compare.sh
//     now measures the same node's 1 MiB DRAM GET, 8 conns, right after
//     its NVMe one, and a loopback stream): at load 2-3 the DRAM GET ran at
//     1.23x (1.17-1.36) of fio's QD8 hugepage random read (3588 against
//     3028 MB/s) and the NVMe GET at 0.70x (0.65-0.76) of fio and 0.55x
//     (0.51-0.62) of the DRAM GET; at load 4-6, 1.01x (0.98-1.04), 0.63x
//     and 0.61x. So the send alone is not what binds the 1 MiB cell, nor
//     the device alone: a value's reads and its sends, two chunks in flight
//     per connection, reach about 0.6 of either limit.
//   - Reads that wait for sends (issue 16, a quiet run): the stream began
//     a chunk's read only once the chunk two before it had been sent, so
//     a stream's reads waited on the loop and the socket. Letting a read's
//     completion begin the next at once, on the goroutine that reaps it
//     (dataplane's getStream: 3 reads in flight, 4 chunks held), took
//     1 MiB NVMe GETs (8 conns) from 2,723 to 3,019 MB/s, 1.11x
//     (1.08-1.14, perf/regress.sh, 5 passes), and from 0.74-0.78x to
//     0.81-0.87x of fio's hugepage QD8 random read (perf/nvme-node-compare.sh,
//     CELLS=1m, 3 rounds, four runs). Variants beside it in one run: 2
//     reads 0.98-1.0x of its rate, 4 reads (begun together, so merged into
//     one 1 MiB request) 0.89x, 4 reads each submitted alone 0.88x, 512 KiB
//     chunks 0.91x, 6 or 8 chunks held 1.0x and 0.89x; batching the reaper's
//     resubmissions into one io_uring_enter per pass, none. Again on the
//     AMD host (CELLS=1m, 3 rounds, 3,034 MB/s, 0.74x of fio's 4,140):
//     4 reads with 6 chunks held 0.86x (0.84-0.86), 512 KiB chunks 0.83x
//     (0.82-0.89). During these
//     runs 65% of the CPU was idle and the device's queue held 8-16
//     requests most of the time: what is left is the time each stream has
//     nothing to read, from its last chunk's read to the client's next
//     request, and fewer bytes in flight than fio's 8 MiB (a stream cannot
//     read ahead of the value it was asked for).
//   - Bytes in flight, measured (AMD host, quiet, /proc/diskstats over 3-4 s
//     of each run): the node's 1 MiB GETs (8 conns, 2,785 MB/s) kept 6.0
//     device requests of 505 KiB on average in flight (the first three
//     chunks of a stream are merged into one 768 KiB request, the fourth
//     goes alone), 3.0 MiB, the device busy 82 % of the time; fio's QD8
//     1 MiB random read (3,717 MB/s) kept 7.2 of 1,015 KiB, 7.2 MiB, busy
//     92 %. The device does not need more: fio's 1 MiB random reads reach
//     3,837 MB/s at QD2 (0.55 ms a read) and 3,913 at QD3, 512 KiB reads
//     4,013 at QD6, 256 KiB reads 3,811 at QD12, and a 256 KiB / 768 KiB
//     mix like the streams' 3,903 at QD12. So the node's 3 MiB in flight
//     on average would fill it if they were spread evenly; they are not:
//     the device sat idle 18 % of the time, moments when no stream had a
//     read in flight (between a stream's last chunk read and its client's
//     next request, a stream sends and waits). Where each stream's 3 ms
//     per GET goes (fio's read alone takes 0.55-2 ms at these depths, the
//     send of 1 MiB about 1.2 ms at 8 conns from DRAM): a Go execution
//     trace of the node (2 s, 5,037 streamed GETs at 3.1 GB/s, with
//     runtime/trace.Log marks at each step of getStream, in a throwaway
//     build) gives, per GET, from its request: the first three chunks'
//     merged 768 KiB read completes at 1,559 us (its device latency, 8
//     streams sharing the device), the fourth read begins then and ends
//     at 2,234 us (675 us), the completion reaches the loop 33 us (p50;
//     mean 97) after the reaper, the last chunk's writev is released
//     118 us after it is queued, the last byte goes at 2,479 us, and the
//     client's next request arrives 198 us after the stream ends: 2,678 us
//     a GET. So each stream has reads in flight for 83 % of its cycle,
//     and the 17 % without (the last send and the client's turn) costs
//     the device only if the streams' tails coincide, and they do: over
//     the same trace all 8 streams had a read in flight 75.9 % of the
//     time and none did 8.7 % (1-7 of them the other 15.4 %), where 8
//     streams idle 17 % of their cycles each, independently, would leave
//     the device idle about 0.17^8 of the time. The device serves the
//     streams' reads together, so they end together and their tails fall
//     together: a convoy. A first try at breaking it, streams reading
//     with two or three chunks in flight by the parity of the request's
//     id (so a GET's first reads merge into 512 or 768 KiB), measured
//     1.01x (0.96-1.11, perf/regress.sh, 6 passes); by a random choice,
//     0.96-1.21x in 3 rounds: not kept. Staggered starts and finer chunks:
//     the bullet after next.
//     Four reads per stream, the first submitted alone and the other three
//     together (a 256 KiB and a 768 KiB request, 1 MiB in flight from the
//     request on), kept 8.1 requests of 527 KiB (4.2 MiB) in flight and
//     measured 2,329-2,492 MB/s against 2,757-2,814 for the present three
//     (3 interleaved 6 s runs), the device busy 68-74 % against 83-84 %.
//   - Finer chunks and staggered streams, tried (AMD host; perf/regress.sh
//     CELLS=nvme-get-1m-c8, 5 passes each, against 2,645-3,070 MB/s for
//     the present 3 reads of 256 KiB): 128 KiB chunks with 6 reads and 8
//     held 1.00x (0.91-1.10); one read at a time 1.00x (0.99-1.14) with
//     1.15x the node's CPU; a stream's first read of 1 or 2 chunks at
//     random, then one at a time (so GETs take 3 or 4 rounds of the
//     device and the streams' phases drift apart) 1.08x (1.04-1.27) and,
//     run again, 0.96x (0.91-1.06), the device busy 91-92 % against 86 %
//     but its rate while busy lower with 256 KiB requests (3,201-3,631
//     against 3,340-3,714 MB/s, /proc/diskstats); 1-3 chunks first 1.06x
//     (0.96-1.14); 512 KiB chunks, 1 or 2 first, 0.94x; 3 or 4 first
//     0.90x; 2-4 first 0.94x. None kept. More streams do not fill the
//     device either: 16 conns gave 2,836-2,861 MB/s against 2,606-2,631
//     for 8 (one node, alternating), the device busy 83-86 %.
//   - The device and a client's turn (fio on a 2 GiB file it laid out,
//     1 MiB random reads, hugepage buffers, 3 s runs, two alternating
//     rounds): 8 jobs at QD1 3,457-3,567 MB/s; the same with 450 us of
//     think time after each read (about the node's tail, above: the last
//     chunk's send and the client's next request) 2,929-2,977, 0.83-0.85x;
//     16 jobs with that think time 3,063-3,095 and 32 jobs 3,197-3,219,
//     though with 32 jobs the think time is 4 % of each job's 9.8 ms
//     cycle. So this VM's device gives less to readers that pause between
//     reads, beyond their idle share (why was not measured).
//     The node's 1 MiB GETs, which pause for the network on every value,
//     run at about fio's rate with a pause (2,600-3,200 MB/s over these
//     runs), not at its QD8 rate without one.
//   - The 4 KiB cells did not move beyond the noise: the value's size is
//     looked up under the read lock before a small get goes the old way.
//     32 conns 0.44x/0.42x old against 0.39x/0.40x new with old measured
//     first, 0.39x old against 0.43x new with new first; 1-conn p50 104 and
//     106 us old against 130 and 139 us new with old first, 114 us old
//     against 108 us new with new first (and 99 us new after another
//     binary): the order in the round, not the change.
//   - Per-loop queues (tried, not kept; local branch
//     nvme/loop-queues-experiment): a get started on the event loop goes
//     into the shared ring, whose eventfd wakes the reaper goroutine,
//     which Loop.Post()s the completion back (an eventfd write and a
//     second goroutine wake-up).
//     The experiment gave each loop a ring of its own (a Queue owned by one
//     goroutine, no lock), submitted its gets at the end of the loop's pass,
//     polled the ring's descriptor in the loop's epoll set and answered the
//     gets where it reaped them. perf stat on the node over 3 s (32 conns,
//     load 4-6): eventfd writes went from 0.15-0.17 per GET to none, read(2)
//     from 1.26-1.30 to 0.89-1.05, io_uring_enter stayed at 0.09-0.12 per
//     GET and context switches at 0.35-0.56: the hand-off it removes was
//     mostly goroutine switches on one thread, not the OS's. Beside other
//     work (perf/nvme-node-compare.sh, CELLS=4k, 5-7 rounds, load 4-6), six
//     runs gave GETs/s 0.96-1.10x and node CPU per GET 0.87-0.99x (medians),
//     the last two, of the final binary, 0.99x and 1.02x. Quiet
//     (perf/regress.sh, that branch against its base faaa1d2, 5 passes): 4 KiB GETs at 32 conns
//     49,888 -> 51,910 ops/s, 1.04x (1.00-1.08); 4 KiB p50 83.7 -> 86.8 us,
//     1.04x worse (0.97-1.09); 1 MiB GETs (streams kept the shared ring)
//     0.98x (0.95-1.06). About 4 % on one cell, far from the 0.7x target,
//     for some 1,100 lines (a second io_uring per loop, its close and short-
//     read paths, a watch API in netio): not kept. Routing the streamed
//     get's chunk reads through the same queue gave 0.97x (0.75-1.87), and
//     holding a pass's reads back while 4 or more were in the kernel (to
//     batch more per io_uring_enter) changed neither the enters per GET
//     (0.1 already) nor the CPU. What is left is what the bullets above
//     name: the doorbell's VM exit per submission, writev, sysmon, and a
//     generator and other work on the same 2 cores.
//   - A lone 4 KiB read (queue depth 1, Intel host, quiet; tried, not
//     kept): the engine submits with one io_uring_enter and waits with
//     another. Submitting and waiting in one call left one enter per GET
//     (strace -c) but did not move the GET's p50: 36.7-37.2 us before,
//     37.2-37.8 after, node CPU 19.2-19.9 against 19.5-20.2 us per GET
//     (3 interleaved 5 s runs each, --busy-poll 0). Spinning on the
//     completion queue for up to 60 us before waiting in the kernel saw
//     every completion without the second enter and was no faster either
//     (p50 1.23x of fio QD1 + DRAM GET against 1.19x, 5 rounds of
//     perf/nvme-node-compare.sh CELLS=p50): the vCPU's halt while the
//     device works is not where the lone GET's extra 5 us over fio's QD1
//     and a DRAM GET go. Of its 19.5 us of node CPU (fio: 7 us per read at
//     QD1, 1.8 us at QD32), the samples show context switches (19%), the
//     virtio doorbell (iowrite16, 12%) and the Go runtime handing the
//     loop's P to another thread while the read waits in the kernel.
//   - 4 KiB GETs from 32 conns, where the node's CPU goes (perf record -g,
//     3 s, Intel host, quiet; 80.7K GETs/s): 60 % kernel (the TCP path,
//     context switches 5.8 %, the doorbell 1.6 %, the block-latency probe's
//     eBPF map 2.1 %), 40 % user: copying each value from its read buffer
//     into the connection's output 6.2 % (the buffer is cold: the device
//     wrote it), the staging buffers' extent maps 4.6 %, the tier's index
//     looked up twice per get (once to see whether to stream, once to
//     read) 3 %, the garbage collector and allocation 2 %. MmapBuffers now
//     keeps freed one-block buffers for reuse (befe0e9): GETs 1.02x
//     (1.02-1.03), node CPU per GET 0.95x (perf/nvme-node-compare.sh
//     CELLS=4k, 3 rounds). The probe's LRU map without the common LRU list
//     (BPF_F_NO_COMMON_LRU) measured 0.99x (0.98-1.01): not kept.
//     The index lookups held the tier's write lock (a reader reference is
//     a count on the version), so both loops and the reaper took turns
//     on it for every get; the count is now atomic and taken under the
//     read lock, and the streaming check before it went (it found the
//     size the same lookup finds): on the AMD host, GETs 1.09x (1.00-1.10),
//     node CPU per GET 0.89x (0.88-1.02), 5 rounds of CELLS=4k. The second
//     lookup, for the read itself, stays (about 1 % of CPU by count).
//   - The same cell through a Go execution trace of the node (AMD host,
//     2 s at 42K GETs/s, 84K GETs): the two loops spent 1.6 s of their
//     4 s in system calls, wall time, 16.5 us per GET: the reply's writev
//     10.8 us (0.94 per GET), the submission's io_uring_enter 18.3 us (0.25
//     per GET, four reads each), the request's read 1.5 us (0.94 per GET),
//     posts' eventfd writes 1.8 us (0.14 per GET). Why a 4 KiB reply's
//     writev takes 10.8 us was not measured further; the likely cause is
//     the wake-up of the generator's thread waiting for it on the other
//     vCPU (an IPI, and a VM exit), the generator being mostly idle on
//     the device's latency: 30 % of the CPU was idle (vmstat) and the
//     device's queue held 12.3 of the 32 GETs on average (/proc/diskstats,
//     0.25 ms per read). The reaper woke 2.5K times a second, 17
//     completions per wake; no loop or reaper wait in the netpoller lasted
//     over 5 ms more than twice, so the 10 ms runtime gap netio's nudge.go
//     closes is not what binds here.
//   - The same cell with each process's CPU per GET (pocket bench
//     --server-pid, AMD host, 3 alternating 4 s runs beside fio's QD32
//     hugepage random read on the same filesystem): fio 85.9-90.9K IOPS,
//     the node 51.9-55.9K GETs/s (0.57-0.64x), the node 16.9-18.4 us and
//     the generator 10.4-11.7 us of CPU per GET, 22-25 % of the CPU idle
//     (vmstat) with the device's queue at 10 and 0.25 ms a read
//     (/proc/diskstats). Four event loops on the 2 cores instead of two:
//     0.95-0.99x of the GETs/s, with more CPU per GET in both processes.
//   - Reaping at the end of the loop's pass (tried, not kept): each event
//     loop reaped the shared ring's completion queue when its pass ended
//     (a hook in netio, Device.Poll here) and answered what it found, with
//     the ring's eventfd signal off while a loop runs and no goroutine
//     waits in Do (with only the first rule both loops once blocked in
//     Do's wait with the signal off: a deadlock). perf/nvme-node-compare.sh
//     CELLS=4k, 3 rounds (AMD host): reaping alone 1.06x (0.98-1.11) of the
//     GETs/s, with the signal off 1.07x (1.00-1.14) and 0.87x the node's
//     CPU per GET; run again 1.02x (0.94-1.10), and with posts skipping the
//     eventfd wake while the loop is awake 0.98x. The cell stayed at
//     0.59-0.62x of fio's QD32 IOPS. Read completions come back as
//     task_work (TWA_SIGNAL) on the submitting thread; the ring's
//     COOP_TASKRUN, which would defer them, is unsafe when Go moves the
//     ring's users between threads. In these runs the node spent 16-23 us
//     of CPU per GET, 0.5 context switches and 0.17 sysmon sleeps per GET,
//     with 27 % of the CPU idle.
//   - Submission deferred while the device is busy (2026-12-03, a 2-core
//     AMD EPYC VM under a paravirtual hypervisor, quiet): here fio's QD32
//     hugepage random read gave 60-118K IOPS between runs, a DRAM 4 KiB
//     GET from 32 conns cost the node 12.4-13.2 us of CPU and an NVMe one
//     28.8-34.5 us. perf stat on the node (3 s, 33.5K GETs/s), per GET:
//     0.26 io_uring_enter, 1.38 read, 1.0 writev, 0.69 epoll_pwait, 0.23
//     eventfd writes, 0.19 context switches; a DRAM GET 1.0 read, 1.0
//     writev, 0.4 epoll_pwait, 0.08 switches. In perf record the
//     submissions were 22.5 % of the node's samples (the doorbell,
//     iowrite16, 11.3 %): about 24 us per io_uring_enter, four reads each.
//     Device.FlushSoon now leaves a small read begun on an event loop to
//     the reaper while deferSubmitAt (4) or more transfers are in the
//     kernel; the reaper hands over everything queued after each reaping.
//     io_uring_enter fell to 0.14 per GET. perf/nvme-node-compare.sh
//     OLD,NEW, 3 rounds, CELLS="4k 1m": 4 KiB GETs 1.06x (1.05-1.13), node
//     CPU per GET 0.91x (0.87-0.92, 28.8 -> 25.5 us), 1 MiB GETs 1.00x
//     (0.91-1.09); CELLS=p50: a lone GET (nothing in the kernel, so it
//     submits at once) 118.0 against 118.5 us. Streamed chunk reads left
//     to the reaper too measured 0.92x (0.92-0.99) of the 1 MiB rate, so
//     they still hand over at once. The cell stays far from its target on
//     this host: the same node's DRAM 4 KiB GETs reached only 0.52-0.55x
//     of fio's 118K IOPS in that run, so the network path alone, on the
//     2 cores the generator shares, is under 0.7x.
//   - Instructions per 4 KiB GET from 32 conns, counted (2026-12-03, Intel
//     host; NVME_DIR=DIR KEYS=20000 LONG=20s perf/callgrind-ab.sh BIN BIN):
//     11,300-11,800 user-space instructions per GET, 4,900 of them in this
//     project's own code. Each GET makes 7 heap allocations: 3 in
//     dataplane's getStart (the header and the owed-bytes count, which its
//     completion callback captures by address, and the callback), 2 in
//     dataplane's NVMe.OpenStart (the nvmeValue and the closure handed to
//     Device.Start), 1 in Device.Start, 1 in postOpened's posted closure.
//     Allocation is about 1,400 instructions a GET (mallocgc and its
//     helpers) and the collector's marking 600-800 more: together about a
//     fifth. Not changed yet: pooling the value changes who may touch it
//     after Release, and a DRAM GET, which allocates nothing, showed that
//     instructions cut are not time saved (README, pipelined GET).
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
