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
// Connections beyond Config.MaxConns are accepted and closed at once.
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
// what one pass produced, while the others are served. A connection whose
// unconsumed input reaches Config.MaxInbound is closed with
// ErrInboundLimit.
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
// # Busy polling
//
// With Config.BusyPoll > 0 a loop that has just seen events polls
// epoll_wait with a zero timeout (a raw syscall, with no scheduler hand-off)
// for that long before it blocks again. It trades a CPU for the wake-up
// latency of a blocking epoll_wait.
//
// # MEASUREMENTS
//
// # Errors
//
// Syscall errors are wrapped with os.NewSyscallError naming the call, and
// the package's own conditions are the sentinels ErrServerClosed,
// ErrInboundLimit, ErrBadConsumed and ErrBadAddress; match with errors.Is.
package netio
