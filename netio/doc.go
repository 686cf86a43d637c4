// Package netio is the storage node's TCP server core: a small set of epoll
// event loops over non-blocking sockets (golang.org/x/sys/unix), built for
// many pipelined small requests and for bulk payloads that must not be
// copied more than once.
//
// # Loops and accepting
//
// Listen starts Config.Loops loops (default one per CPU). Each loop is one
// goroutine with its own epoll instance, eventfd and listening socket; the
// listeners share the port with SO_REUSEPORT, so the kernel spreads new
// connections over the loops and a connection is accepted, served and
// closed by one goroutine with no hand-off and no locks on the data path.
// The price is that the kernel's hash decides the spread: with only a few
// connections one loop may get more than its share. One acceptor handing
// connections to loops would balance few connections better at the cost of
// a cross-goroutine hand-off per accept; it was not needed for the targets.
//
// Connections beyond Config.MaxConns, or beyond Config.MaxConnsPerPeer
// from one peer, are accepted and closed at once, unless a slot of the
// reserve is free (Config.ReserveConns, off by default): a few
// connections over the limits, a quarter of them per peer at most, each
// closed Config.ReserveTimeout after its accept, on which the handler
// answers only small questions (Conn.Reserved; the storage node serves
// its controller's incarnation question and drop orders there), so a
// server whose slots are all taken can still be asked (reserve.go).
//
// When accept fails for lack of descriptors or memory (EMFILE, ENFILE,
// ENOBUFS, ENOMEM) the pending connection stays queued and the listener
// stays readable, so a level-triggered loop that simply retried would spin
// on it (it did: 93% of a core, while the clients hung). Instead the loop
// takes its listener out of its epoll set for 10 ms, doubling on each
// failure in a row up to 1 s, and serves its open connections meanwhile;
// clients wait in the listen backlog and are accepted once descriptors are
// free again (within the current pause, at most a second).
//
// # A pass of the loop
//
// A loop waits in epoll_wait (level-triggered), then for each ready
// connection reads until the socket is drained or Config.MaxReadPerPass
// bytes have been read (fairness: one client cannot starve the others),
// calling Handler.OnData after every read. At the end of the pass, every
// connection that queued output gets one writev of all of it: responses to
// many pipelined requests leave in one syscall. EPOLLOUT is registered
// only while output is left over after a writev.
//
// # Buffer lifetimes
//
//   - OnData's in: valid only during the call. For a connection with no
//     leftover it is the loop's shared read buffer (Config.ReadBuffer),
//     overwritten by the next read of any connection of the loop. Bytes the
//     handler does not consume are copied to a pooled per-connection buffer
//     and presented again, followed by new bytes, on the next call; that
//     buffer goes back to the loop's pool as soon as everything in it is
//     consumed. An idle connection therefore holds no buffer at all.
//   - Conn.Write(p): p is copied into pooled chunks before Write returns.
//   - Conn.WriteRef(p, r): p is not copied; writev reads it straight from
//     the caller's memory. The caller must not change or free p until
//     r.Release is called, which happens exactly once, on the loop, after
//     the last byte of p was written or when the connection closed.
//   - Conn.Hold: a reply written over several passes (a value streamed
//     from a device chunk by chunk) holds the end of the output: Write and
//     WriteRef on the connection queue behind the hold, in a second queue
//     that joins the first when the hold is released, so no other reply is
//     ever cut into the held one. Closing with a hold active sends the
//     output up to the hold's last write and drops (releasing every
//     reference) what was queued behind it, so a frame cut short stays
//     short and the peer sees the connection end inside it.
//   - Sink: after OnData calls SetSink, the bytes following the consumed
//     ones are copied into the sink's regions from what was already read,
//     then read(2) goes straight into Sink.Next(). The sink's memory is
//     written only on the loop goroutine and only until Done.
//
// # Backpressure and limits
//
// When a connection's queued output passes Config.MaxOutbound the loop
// stops reading it (EPOLLIN off) and resumes when half has drained, so a
// client that never reads its responses costs at most MaxOutbound plus
// what one pass produced, while the others are served. The output queued
// on all connections together is bounded too (Config.MaxOutboundTotal,
// 64 MiB): while it is over, a connection with more than OutboundFloor
// (64 KiB) queued is not read until its own queue is down to that or the
// total to half. A client that reads its replies soon drains below the
// floor and goes on; 40 that read nothing, each under MaxOutbound, no
// longer hold 40 times it.
//
// What one pass produces can be far more than MaxOutbound: a read of
// 256 KiB holds thousands of small requests, and a reply to each may be
// a 16 KiB copy. A handler that checks Conn.Backlogged before each frame
// and stops there bounds a connection to the bounds plus one reply; the
// loop then reads no more of that connection, and once its output has
// drained presents the frames left in its buffer to OnData again, from a
// posted task when no new bytes arrive to do it. Replies written later,
// off the loop (a device read in flight), count too once the handler
// promises them with Conn.Expect. A connection whose
// unconsumed input reaches Config.MaxInbound is closed with
// ErrInboundLimit.
//
// # End of input
//
// A peer that shuts its writing side (or closes: the two look alike)
// is read no more, and its connection closes once it owes nothing: its
// queued output written, the replies its handler promised (Conn.Expect)
// written, its hold released (peerEOF); a payload cut short by the end
// is dropped. A handler that implements EOFHandler is told first, to
// answer or drop what it has not started (the node answers busy the
// listings still waiting on its scan lane). So a client that half-closes
// after its requests gets a reply to each; WriteTimeout closes one that
// does not read them. IdleTimeout does not close a connection with
// replies promised.
//
// A connection the server closes (Conn.Close, an OnData error,
// WriteTimeout, a sink below MinSinkRate) is likewise read no more and
// closes once its promised replies are kept, their output sent as far as
// the socket takes it (none after WriteTimeout, which resets): so once a
// peer sees the close, nothing of what it sent on that connection is still
// under way. An eviction for a newcomer at MaxConns (EvictUnproven)
// takes a connection with nothing promised first, on the newcomer's loop
// or on another, which then opens the newcomer itself, so no claim opens
// one past MaxConns; a connection with work under way is evicted only
// when no loop has an idle one, and closes so too: its slot is free only
// then, the newcomer refused meanwhile. Closes for a failed socket, at
// ReserveTimeout and at shutdown are at once.
//
// # Timeouts and per-peer limit
//
// Pausing bounds what a client that never reads costs, but not for how
// long: without a deadline its queued output, including the WriteRef
// references that keep values alive (a deleted 16 MiB value stays in
// memory until its reference is released), would be held as long as the
// client kept the socket open. Config.WriteTimeout (default 30 s) resets a
// connection whose peer has taken no byte of its queued output for that
// long, which releases everything it held; OnClose gets ErrWriteTimeout.
// Each byte the peer takes restarts that clock. 30 s of a zero TCP window
// is far beyond any pause of a working reader, and is the typical case of
// a frozen Lambda (its invocation ended mid-read) or a dead host. A client
// that reads, but slowly, is held to Config.MinDrainRate (default 256
// KiB/s over each window of Config.DrainGrace, 10 s) while its output
// waits: a slower one is reset, OnClose gets ErrSlowDrain.
// Before, one taking a few bytes now and then held what its replies
// referenced for as long as it read (a hostile trial: 180 MiB of a node's
// deleted values, three connections at 17 KB/s).
//
// Config.IdleTimeout (default 2 min) closes a connection with nothing
// queued on which the handler has taken no input (OnData consuming bytes,
// or bytes read into a Sink) and the peer no output for that long;
// OnClose gets ErrIdleTimeout, so the handler releases its state. Bytes
// that never make up a request (a header trickled a byte at a time) do not
// keep a connection open. Clients of this data plane are Lambdas whose
// connection pools outlive their invocations: a warm container is frozen
// between invocations, its sockets idle but open, for many minutes (a
// review filled a node's connection limit with 1,030 idle sockets). The
// workers of a running job talk to their nodes every few seconds at
// most, so two minutes is far above any pause of a live client and still
// reaps a frozen container's sockets long before the container itself is
// reclaimed. A client must expect a pooled connection it left idle for
// longer to have been closed, and redial.
//
// Config.MinSinkRate (default 256 KiB/s, after Config.SinkGrace, 5 s)
// closes a connection whose peer sends the payload it announced (a Sink)
// more slowly; OnClose gets ErrSlowSink. A sink holds what its
// announcement reserved (a put's space in a tier), so without it a peer
// trickling a byte every few seconds, each byte progress against
// IdleTimeout, held its reservation for as long as it trickled: a hostile
// trial kept a node's other puts refused as full with 40 of them.
//
// All three are enforced by a sweep, per loop, every quarter of the shorter
// timeout and at most every second (a timerfd in the loop's epoll set,
// disarmed while the loop has no connections), over the loop's
// connections. The sweeps are the clock: the data path reads no time, it
// only stores the loop's sweep count into the connection when it makes
// progress, so it gains no syscall, no clock read and no allocation. A
// connection is closed between its timeout and its timeout plus the sweep
// period after its last activity.
//
// Config.MaxConnsPerPeer (default 4096) bounds one peer's connections, an
// IPv4 address or an IPv6 /64, so one leaking client cannot take all of
// MaxConns (10000). It is high on purpose: Lambdas in a VPC reach a node
// through shared Hyperplane ENIs or NAT gateways, so a whole job's workers
// can share one source address, each with the SDK's two connections per
// node; 4096 admits a 2048-worker job behind one address and still leaves
// most of MaxConns to everyone else. Loopback counts like any peer, far
// above the hundred or so connections the benchmarks open from 127.0.0.1
// (and the 2000 of the idle-connection tests).
//
// Each limit logs a line naming it (limit=MaxConns, MaxConnsPerPeer,
// IdleTimeout, WriteTimeout, RLIMIT_NOFILE) to Config.Logger, at most one
// per limit per loop per second with the count since the last line, and
// is counted in Stats (Refused, RefusedPerPeer, IdleClosed, WriteTimeouts,
// AcceptBackoffs).
//
// # Wake-ups and posting
//
// Loop.Post and Conn.Post queue a function under a mutex and write the
// loop's eventfd only when no wake-up is already outstanding (a CAS flag),
// so a burst of posts costs one eventfd write and one wake-up. Posted
// functions run after the events of the pass, before the flush, so output
// they queue leaves in the same writev.
//
// # Threads and goroutines
//
// Everything a loop owns (connections, buffers, its pool) is touched only by
// its goroutine. Conn methods other than Post must be called on the loop:
// in Handler callbacks or in posted functions. Config.LockOSThread wires a
// loop goroutine to one OS thread; see the measurements below.
//
// # Waiting for events, and busy polling
//
// An idle loop parks its goroutine in the Go runtime's netpoller until its
// epoll descriptor is readable (epoll descriptors are themselves pollable),
// then collects the events with a zero-timeout epoll_wait. It holds no OS
// thread while idle and needs no thread hand-off to wake. With
// Config.WaitInSyscall it blocks in epoll_wait instead, holding a thread.
// The runtime can leave a parked loop unpolled for up to sysmon's 10 ms
// while another loop runs and a P is idle; the running loops watch for
// that and wake a thread to poll (nudge.go, Stats.Nudges).
//
// With Config.BusyPoll > 0 a loop that has just seen events polls
// epoll_wait with a zero timeout (a raw syscall, with no scheduler entry)
// for that long before it waits again. It trades a CPU for wake-up latency.
//
// Measured with BenchmarkPingPong (1 KiB echo, unpipelined, clients over
// plain net.Conn in the same process; Go 1.26, 2-core AMD EPYC VM shared
// with other work, load average 4-5 during the run; six interleaved runs of
// -benchtime=0.2s, medians; per op = one round trip, or for 50 conns the
// aggregate time per round trip):
//
//	mode (2 loops unless said)   1 conn     50 conns
//	park (default)               19 us      17 us
//	park, 1 loop                 18 us      21 us
//	syscall                      31 us      18 us
//	syscall, 1 loop              26 us      18 us
//	syscall, LockOSThread        29 us      22 us
//	busypoll 50us                53 us      13 us
//	busypoll 50us, 1 loop        49 us      15 us
//	busypoll 50us, LockOSThread  78 us      14 us
//
// Where busy polling wins: many connections keeping a loop busy (50 conns:
// about 1.3x the round trips of parking), when a core is free for the
// spinning loop. Where it loses: one connection, or any time the cores are
// shared. A spinning loop never enters the scheduler, so in-process
// goroutines (here the clients) wait longer to be woken from the netpoller
// and to get a CPU: 2.7x slower round trips on one connection here. So
// BusyPoll stays off by default in this package. Config.MaySpin can gate
// it; the node gates it on idle CPU (package internal/idlecpu): loops spin
// only while half a core or more of the machine is idle, which is where
// spinning wins, and stop when the cores are busy, where it loses. The node
// (pocket node) runs with BusyPoll 50us gated that way: measured through
// the node against Redis on this machine, one connection's get p50 fell
// from 0.98-1.15x of Redis's to 0.37x, while the 50-connection cells, where
// the gate stays closed, moved only within run-to-run noise. Locking loop
// goroutines to OS threads did not help in any case and is off by default.
// On another host of the same class (a 2-core Intel VM, where the
// guest's wake-ups are cheaper), busy polling lengthened a lone loopback
// connection's GET p50 from 9-10 us to 12-16 us, gate or no gate, while
// Redis took 9.7: with nothing pinned the scheduler wakes the node onto the
// load generator's core and back, sparing both wake-ups an interrupt,
// which a spinning loop forgoes. With the node on one core and the
// generator on the other, as a client on another machine would be, the
// spinning node took 13 us, the parking one 16 and Redis 16, so the
// default stays; perf/bench-compare.sh measures the cell both ways
// (bench.Cell's Apart).
// Parking beat blocking in epoll_wait by 1.6x on one connection and tied
// on 50, hence the default. Through the node, with the load generator in
// its own process (1 KiB GETs, 50 connections, eight interleaved 3 s
// passes at load 14-16, after the raw syscalls below), blocking in
// epoll_wait cost 5.92 us of node CPU per GET against parking's 4.53 and
// served 0.86x the GETs (per pass 0.63-1.01x). The figures vary by up to 2x from run to run on
// this shared machine; rerun before relying on them:
//
//	go test -run '^$' -bench PingPong -benchtime=0.2s -count=6 ./netio
//
// Blocking in epoll_wait again, through the node on the Intel host (quiet,
// 3 interleaved 3 s rounds, a DRAM-only node with its default busy
// polling, against the parking build): 1 KiB GETs and PUTs from 50 conns
// 1.00x; pipelined GETs (50 x 16) 1.04x; pipelined PUTs 0.94x, with the
// node's CPU per PUT 1.23 against 0.98 us (both loops now ran at once and
// contended on the slab allocator's class lock: procyield and lockSlow rose
// from 2.6 to 8.6 % of the node's samples); 1-conn GET p50 11.2-11.5
// against 13.8-14.3 us; 1 MiB GETs (8 conns) 1.04-1.06x, level with
// memcached -t 2 in the same run. With --nvme (busy polling off), 4 KiB
// NVMe GETs from 32 conns fell to 0.83x (0.80-0.89) and a lone 4 KiB DRAM
// GET rose from 9.7 to 14.6 us (perf/nvme-node-compare.sh, 3 rounds). So
// parking stays the default.
//
// The echo benchmarks (BenchmarkEcho, BenchmarkWriteRef) report 0 allocs/op
// for the whole process, clients included: Write, WriteRef, OnData and the
// loop allocate nothing per request in steady state.
//
// # System calls
//
// read(2) and writev(2) on the loop's sockets, and the eventfd and timerfd
// reads and writes, are plain system calls (syscall.Syscall: entersyscall,
// exitsyscall) in a pass with one event; the zero-timeout epoll_wait is
// raw, and so are a writev of 64 KiB or more and a read into a sink's
// region of 64 KiB or more (rawFrom; "Long copies" below), and every read
// and writev of a pass with two events or more (Loop.busyPass). Raw calls
// for all of them (unix.RawSyscall; the descriptors are non-blocking, so
// none can sleep holding its P) have been tried twice and were not kept,
// because a lone connection's latency rests on what they remove; see
// "Where the time goes" for the second try's figures. The first: node CPU
// per 1 KiB GET at 50 connections 6.54 -> 5.30 us, ops/s within noise,
// 1-conn p50 20.2 -> 55.2 us (perf/regress.sh, per-pass 2.2-5.0x). A lone
// connection's passes have one event, so raw calls in busier passes only
// leave it as it was: on the AMD host, perf/regress.sh (4 passes) 1 KiB
// PUT 50 conns 1.10x (1.09-1.20), pipelined GET 1.13x (0.99-1.18),
// pipelined PUT 1.13x (1.08-1.18), GET 50 conns 1.03x (0.95-1.13), 1 MiB
// GET 0.99x, 1-conn p50 0.95x; an earlier 3-pass run 1.04x, 1.13x, 1.09x,
// 1.03x, 0.94x, 1.12x (0.89-1.24), NVMe 4 KiB 32 conns 1.02x and 1-conn
// p50 0.94x. perf stat on the node, 3 interleaved rounds: futex calls per
// 1 KiB GET (50 conns) 0.027-0.035 -> 0.003-0.016, context switches per
// PUT 0.13-0.18 -> 0.06-0.10, node CPU per PUT 8.3-8.5 -> 7.7-7.9 us.
//
// The figures below were taken with the first try's raw calls.
//
// System calls per 1 KiB GET from 50 connections (strace -c -f on the
// node for 3 s of pocket bench): one read and one writev per request, one
// zero-timeout poll of the loop's epoll set per 20 requests (a pass serves
// about 20 connections), the runtime's own epoll_pwait, futex and
// nanosleep together under 0.02. With
// syscall.Syscall, in the same run length, each request also cost 0.32
// nanosleep, 0.13 futex and 0.12 epoll_pwait calls.
//
// # Long copies
//
// A writev of a 1 MiB value copies for 100-300 us. Made through
// syscall.Syscall, it outlasts sysmon's 20 us tick, so sysmon takes the
// loop's P from the call and hands it to another thread (waking one), and
// the loop wins a P back when the call returns. On the AMD host that cost
// 1.6-2.0 context switches per 1 MiB GET (8 conns); as a raw call, which
// keeps the P for the copy, 0.53-0.60, and the node's CPU per GB sent fell
// from 0.21-0.23 to 0.18-0.19 s (perf stat on the node, 3 interleaved
// rounds): 1 MiB GETs 1.27x (1.06-1.36; perf/regress.sh, 3 passes), the
// other cells within noise (pipelined GET 0.97x (0.83-1.02), NVMe 4 KiB
// 0.95x (0.95-1.01), NVMe 1 MiB 1.04x, SDK 64 MiB PUT 1.10x and GET
// 1.01x). 1 MiB PUTs (reads into the value's chunk) did not move (about
// 10 GB/s and 1.1-1.2 context switches per PUT either way); their reads
// into the value's chunk (a sink) are raw from the same size for the same
// reason. Reads into the loop's 64 KiB read buffer were raw too at first
// (the buffer is rawFrom long), which made every small request's read raw:
// they are plain again in a pass with one event, as the lone connection's
// latency asks ("System calls"). On the Intel host the writev change alone
// had measured 1.01-1.02x: its wake-ups are cheaper.
// The price: while a loop copies, no other goroutine runs on its P, and a
// stop-the-world waits for the copy to end.
//
// # Where the time goes
//
// The node serving 1 KiB GETs to 50 unpipelined connections (perf record
// -g -e cpu-clock on the node, 2-core VM shared with other work; shares
// of the node's CPU, children included):
//
//	writev: the kernel's TCP send, loopback delivery and waking the client  45%
//	read: the kernel's TCP receive                                          10%
//	the handler (dataplane OnData), of which                                25%
//	  index lookup (ktable.find, cache misses on the slot and the record)    7%
//	  copying the value into the output queue (Conn.Write)                   5%
//	  request decode and verify (flatbuffers)                                3%
//	  per-request metrics                                                    1.5%
//	parking and waking the loop (Go scheduler, netpoller, epoll_wait)       17%
//	syscall entry and exit                                                   4%
//
// So two thirds of a small GET is the kernel's TCP work, which a faster
// loop cannot remove, and the loop's own code (buffers, queues, flush) is
// under 3%. Nothing allocates per request (0 allocs/op in BenchmarkEcho
// and dataplane's BenchmarkNodePipelined1KiB) and no lock shows in the
// profile. Per GET the node used 6.3 us of CPU against Redis's 6.8 us in
// the same interleaved runs (utime+stime over ops): on a machine whose two
// cores also run the load generator the node's edge over single-threaded
// Redis comes from its second loop, not from cheaper requests. The echo
// server of package perf/echo, this loop with a handler that only answers,
// used 3.3-4.2 us per 1 KiB GET in four interleaved passes against the
// node's 5.2-5.9 us: what a GET costs above the loop is the node's
// handler, about 2 us.
//
// Raw system calls, second try (issue 16): with every P idle the runtime's sysmon sleeps, and the
// next syscall.Syscall wakes it (a futex) and resets its period to 20 us;
// a node going idle and busy thousands of times a second kept it waking
// about 6K times a second, 12% of the node's CPU on 4 KiB NVMe GETs (32
// conns; nvme's doc). Making this package's non-blocking calls raw (read,
// writev, the eventfd's read and write, the timerfd's read; with nvme's
// io_uring submission and reaper eventfd read) measured, side by side with
// the old binary (2-core Firecracker VM shared with other helpers, load
// 1-4.5, so noisy; ratios are medians with per-round ranges):
//
//	perf/nvme-node-compare.sh, CELLS=4k, 5 rounds of 5 s:
//	  4 KiB NVMe GET, 32 conns: node CPU per GET 21.7 -> 18.4 us, 0.85x
//	  (0.70-1.02); GETs/s 38.9K -> 42.6K, 1.11x (0.95-1.26)
//	perf/regress.sh, 5 passes of 3 s (new/old, per-pass range):
//	  get-1k-c50 0.90x (0.81-1.12)   put-1k-c50 0.88x (0.73-1.53)
//	  get-1k-p16 0.91x (0.71-1.18)   put-1k-p16 1.14x (0.93-1.39)
//	  get-1m-c8  1.10x (0.86-1.45)   nvme-get-1m-c8 0.85x (0.79-1.15)
//	  nvme-get-4k-c32 1.13x (0.89-1.51)
//	  get-1k-c1 p50 16.7 -> 14.4 us at load 3-4.5, but 1.9-2.4x worse in
//	  the two quieter passes; CELLS=get-1k-c1 alone at load 1-2: 14.2 -> 41.1
//	  us, 2.89x (1.81-3.48); with --busy-poll 0: 11.5 -> 66.8 us, 5.82x
//	  (5.69-6.11)
//
// Why a lone connection got slower: this VM's guest halts an idle vCPU at
// once (cpuidle haltpoll with guest_halt_poll_ns 0), and waking a halted
// vCPU costs tens of microseconds. sysmon's 20 us wake-ups, which the
// plain calls keep going, hold the vCPUs out of halt between one
// connection's requests (theirs and the load generator's). With two nice-19
// spinning shells keeping both vCPUs busy, the raw build's 1-conn p50 was
// 10.7-11.2 us against the plain build's 15.7, and without them 67-82
// against 15.2 (--busy-poll 0, single 3 s runs). In perf stat over 3 s of
// that cell the plain build made 0.37 futex and 0.26 nanosleep calls per
// GET and the raw build none. So the raw calls are cheaper, and the 1-conn
// latency the plain calls give is sysmon polling the machine by accident.
// Not kept: a win at 32 conns does not pay for 3-6x on one connection.
// Keeping the CPUs awake on purpose while a connection is active (spinning
// that also covers the gap the generator's vCPU sees) would let the raw
// calls in; busy polling as it is (50 us, gated on idle CPU) did not
// (2.89x above).
//
// # io_uring
//
// An io_uring loop was tried beside the epoll loop and is not used: each
// loop's ring received with multishot recv into a provided-buffer ring and
// sent with IORING_OP_SEND (MSG_DONTWAIT, so a send completes inline in
// the io_uring_enter that submits it), one io_uring_enter per pass for
// every send and re-arm, on a thread-locked SINGLE_ISSUER|DEFER_TASKRUN
// ring. Against the epoll loop with the same in-process clients (1 KiB
// echo; interleaved runs, medians): at load 7-13, 50 connections 7.7 us
// per round trip against epoll's 6.7 (epoll/uring per pass 0.58-1.11), one
// connection 12.9 us against 9.4; at load 15-18 io_uring came out ahead
// on 50 connections by 1.04x and 1.19x (two sets of eight) and 2.6x behind
// on one; submitting each send with its own enter lost to batching by
// 1.2x. The syscalls it saves are the 4% above, and the blocking enter
// costs a thread hand-off per wake-up that parking in the netpoller does
// not. A win that flips with the machine's load does not pay for a second
// loop (sinks into slab memory, WriteRef, pausing, cancellation on close
// would all need io_uring versions); the experiment is on the branch
// netpath/uring-experiment (netio/uringexp_test.go, BenchmarkUringPingPong).
//
// # Errors
//
// Syscall errors are wrapped with os.NewSyscallError naming the call, and
// the package's own conditions are the sentinels ErrServerClosed,
// ErrInboundLimit, ErrIdleTimeout, ErrWriteTimeout, ErrBadConsumed and
// ErrBadAddress; match with errors.Is.
package netio
