package netio

import (
	"errors"
	"log/slog"
	"runtime"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Config tunes a Server. Zero fields take the defaults documented on each.
type Config struct {
	// Loops is the number of event loops, each with its own goroutine,
	// epoll instance and SO_REUSEPORT listener. Default runtime.NumCPU().
	Loops int
	// MaxConns bounds open connections over all loops; a connection beyond
	// it is accepted and closed at once (or opened on the reserve:
	// ReserveConns). Default 10000.
	MaxConns int
	// MaxConnsPerPeer bounds the open connections of one peer address (an
	// IPv4 address, or an IPv6 /64), over all loops; a connection beyond
	// it is accepted and closed at once, with nothing written, so one
	// client cannot take all of MaxConns. Loopback peers count like any
	// other. Negative: no per-peer limit. Default 4096
	// (DefaultMaxConnsPerPeer): see the package doc for why it is high.
	// A connection over it may be opened on the reserve (ReserveConns).
	// With EvictUnproven, one over it first takes the place of its peer's
	// oldest unproven connection (peerevict.go).
	MaxConnsPerPeer int
	// ReserveConns is how many connections over MaxConns or
	// MaxConnsPerPeer may be open at once, over all loops, as reserve
	// connections (Conn.Reserved), at most a quarter of them (at least
	// one) from one peer; a connection over the limits that finds no
	// reserve slot is closed at once as before. A reserve connection
	// lives at most ReserveTimeout and its handler is expected to answer
	// only a small question there and close it (the storage node serves
	// its controller's questions, refusing the rest): it lets a node
	// whose slots are all taken still be asked. Not counted in Open nor
	// against MaxConns. 0 or negative: no reserve. Default 0.
	ReserveConns int
	// EvictUnproven lets a connection over MaxConns take the place of the
	// loop's oldest connection that the handler has not vouched for
	// (Conn.Prove) and that has been open for at least UnprovenGrace:
	// that one is reset (OnClose gets ErrEvictedUnproven) and the new one
	// opened in its slot. Without it, peers that prove nothing (a storage
	// node's pings need no token) held every slot for as long as they
	// pinged, and clients with valid tokens were refused. Likewise a
	// connection over MaxConnsPerPeer takes the place of its own peer's
	// oldest such connection (peerevict.go). Default false.
	EvictUnproven bool
	// MaxProvenPerOwner bounds the connections one owner may have proven
	// at once (Conn.ProveFor; a storage node's owner is whoever
	// registered the job whose token a connection showed: dataplane's
	// proveFor). A connection proven past it stays
	// unproven, so at MaxConns it may give its slot to a newcomer, after
	// every connection that proved nothing: one job's connections cannot keep
	// every other job off a shared node (a hostile trial: 40 connections
	// that each sent one stat with a job's valid token left 5 of 5 of
	// another job's puts refused at the limit). Only with EvictUnproven.
	// A reserve connection whose owner holds less than its fair share of
	// MaxConns may take the slot of an owner over it (Conn.Promote,
	// fairshare.go). Negative: no bound and no promotion. Default half
	// of MaxConns.
	MaxProvenPerOwner int
	// ReserveTimeout closes a reserve connection this long after it was
	// accepted, whatever it does; OnClose gets ErrReserveTimeout.
	// Default 1 s (DefaultReserveTimeout). Timed on its own, not by the
	// idle sweep: a connection is closed within a few milliseconds of it.
	ReserveTimeout time.Duration
	// IdleTimeout closes a connection that has nothing queued to write or
	// promised (Conn.Expect, a Hold) and
	// has neither had a request taken by the handler (OnData consuming
	// bytes, or bytes going into a Sink) nor had output accepted by the
	// peer for this long. Bytes that never make up a request (a partial
	// header trickling in) do not count. OnClose gets ErrIdleTimeout.
	// Negative: never. Default 2 minutes (DefaultIdleTimeout): see the
	// package doc. Enforced by a periodic sweep: a connection is closed
	// between IdleTimeout and IdleTimeout plus the sweep period (a
	// quarter of the shorter timeout, at most 1 s) after its last activity.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection that has output queued (Write or
	// WriteRef) of which the peer has taken no byte for this long (no
	// writev progress, and the socket's send queue unchanged); the
	// socket is reset, every WriteRef reference it held is released and
	// OnClose gets ErrWriteTimeout. Negative: never. Default 30 seconds
	// (DefaultWriteTimeout). Enforced by the same sweep as IdleTimeout.
	WriteTimeout time.Duration
	// MinSinkRate is the slowest a peer may send a payload it announced
	// (a Sink's bytes, Conn.SetSink), in bytes per second, after
	// SinkGrace: a connection whose sink has taken fewer than MinSinkRate
	// bytes a second since its first SinkGrace, or over any window of half
	// SinkGrace after it, is closed, and OnClose gets ErrSlowSink. A sink holds what its announcement reserved (a
	// put's space in a tier), so a peer trickling its payload would hold
	// that for as long as it trickled: every byte is progress against
	// IdleTimeout. Time while the connection's reading is paused (the
	// peer left more than MaxOutbound of replies unread) counts like any
	// other. Negative: never. Default
	// 256 KiB/s (DefaultMinSinkRate). Enforced by the timeout sweep.
	MinSinkRate int64
	// SinkGrace is how long a sink may take before MinSinkRate applies.
	// Default 5 s (DefaultSinkGrace).
	SinkGrace time.Duration
	// MinDrainRate is the slowest a peer may take the connection's queued
	// output, in bytes per second, over each DrainGrace while some waits:
	// a connection whose peer has taken fewer than MinDrainRate bytes a
	// second over such a window is closed, and OnClose gets ErrSlowDrain.
	// Queued output may hold the caller's memory (Conn.WriteRef: a GET's
	// value, kept allocated after a delete until its last byte is sent),
	// and a peer taking a few bytes now and then is progress against
	// WriteTimeout: a hostile trial's three connections reading 17 KB/s
	// held 180 MiB of a 256 MiB node's deleted values for as long as they
	// read. Each window counts alone, so bytes taken fast earlier are no
	// credit for a trickle later (a re-check read 570 MiB fast, then held
	// two deleted 64 MiB values at 16 KB/s), and it applies to any output
	// waiting, so a value's last bytes cannot be trickled either.
	// Output waits only once the socket's buffer is full, so a peer
	// taking small replies slowly is not concerned. Negative: never.
	// Default 256 KiB/s (DefaultMinDrainRate), as MinSinkRate.
	MinDrainRate int64
	// DrainGrace is the window MinDrainRate weighs the peer's pace over.
	// Default 10 s (DefaultDrainGrace).
	DrainGrace time.Duration
	// ReadBuffer is the size of one read(2), into a buffer shared by all
	// connections of a loop. Default 64 KiB.
	ReadBuffer int
	// MaxReadPerPass caps the bytes read from one connection in one pass of
	// the loop, so one busy client cannot starve the others. Default 256 KiB.
	MaxReadPerPass int
	// MaxInbound is how many unconsumed bytes a connection may hold; when
	// it holds that many it is closed with ErrInboundLimit. Default 1 MiB.
	MaxInbound int
	// MaxOutbound is the queued-output high-water mark: above it the loop
	// stops reading the connection, and resumes once half of it has drained.
	// Default 4 MiB.
	MaxOutbound int
	// MaxOutboundTotal bounds the output queued (or promised with
	// Conn.Expect) on all of the server's connections together, in bytes: while the total is over it, a
	// connection with more than OutboundFloor queued stops being read as
	// past MaxOutbound, and resumes once its own queue is down to
	// OutboundFloor or the total to half the bound. MaxOutbound alone let
	// 40 connections that never read take a node's heap from 21 MB to
	// 300 MB (a hostile trial, 2026-12-01). Default 64 MiB; negative: no
	// bound. The total is counted when a connection's output is written,
	// so it may pass the bound by what one pass of each loop queues.
	MaxOutboundTotal int
	// BusyPoll, when positive, makes a loop spin on epoll_wait with a zero
	// timeout for this long after its last event before it blocks. See the
	// package doc for where it pays. Default 0 (off).
	BusyPoll time.Duration
	// MaySpin, when set, is asked before every busy poll; false makes the
	// loop block instead. The node passes an idlecpu.Gate's Open, so loops
	// spin only while cores are idle. Default nil (spin whenever BusyPoll
	// says).
	MaySpin func() bool
	// LockOSThread wires each loop goroutine to its own OS thread.
	// See the package doc for the measurement. Default false.
	LockOSThread bool
	// WaitInSyscall makes an idle loop block in epoll_wait, holding its OS
	// thread, instead of parking its goroutine in the Go runtime's
	// netpoller until its epoll descriptor is ready. See the package doc
	// for the measurement. Default false (park).
	WaitInSyscall bool
	// Logger gets one line when a limit triggers (MaxConns,
	// MaxConnsPerPeer, IdleTimeout, WriteTimeout, descriptor exhaustion
	// at accept), naming the limit (limit=<field or RLIMIT_NOFILE>); at
	// most one line per limit per loop per second, whose count is the
	// occurrences since the previous line. Stats counts every occurrence.
	// Default slog.Default().
	Logger *slog.Logger
}

// Default values of Config fields.
const (
	DefaultMaxConns       = 10000
	DefaultReadBuffer     = 64 << 10
	DefaultMaxReadPerPass = 256 << 10
	DefaultMaxInbound     = 1 << 20
	DefaultMaxOutbound    = 4 << 20
	// DefaultMaxOutboundTotal is Config.MaxOutboundTotal's default.
	DefaultMaxOutboundTotal = 64 << 20
	// OutboundFloor is what a connection may keep queued and still be
	// read while the server's total is over Config.MaxOutboundTotal.
	OutboundFloor = 64 << 10

	DefaultMaxConnsPerPeer = 4096
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultWriteTimeout    = 30 * time.Second
	DefaultReserveTimeout  = time.Second
	// UnprovenGrace is how long a new connection is spared from
	// EvictUnproven: time for its client's first request.
	UnprovenGrace = 250 * time.Millisecond
	// The SDKs' 1 MiB chunk may take 9 s and the largest payload a node
	// takes by default (64 MiB, wire.DefaultMaxPayload) 261 s: far slower
	// than a live client, which sends at GB/s over loopback here and at
	// tens of MB/s from a small Lambda.
	DefaultMinSinkRate = 256 << 10
	DefaultSinkGrace   = 5 * time.Second
	// DefaultMinDrainRate and DefaultDrainGrace are MinDrainRate's and
	// DrainGrace's defaults: 2.5 MiB every 10 s; a 64 MiB reply may take
	// 256 s.
	DefaultMinDrainRate = 256 << 10
	DefaultDrainGrace   = 10 * time.Second
)

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Loops <= 0 {
		c.Loops = runtime.NumCPU()
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.ReadBuffer <= 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	if c.MaxReadPerPass <= 0 {
		c.MaxReadPerPass = DefaultMaxReadPerPass
	}
	if c.MaxInbound <= 0 {
		c.MaxInbound = DefaultMaxInbound
	}
	if c.MaxOutbound <= 0 {
		c.MaxOutbound = DefaultMaxOutbound
	}
	if c.MaxOutboundTotal == 0 {
		c.MaxOutboundTotal = DefaultMaxOutboundTotal
	}
	if c.MaxConnsPerPeer == 0 {
		c.MaxConnsPerPeer = DefaultMaxConnsPerPeer
	}
	if c.MaxProvenPerOwner == 0 {
		c.MaxProvenPerOwner = max(c.MaxConns/2, 1)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MinSinkRate == 0 {
		c.MinSinkRate = DefaultMinSinkRate
	}
	if c.SinkGrace <= 0 {
		c.SinkGrace = DefaultSinkGrace
	}
	if c.MinDrainRate == 0 {
		c.MinDrainRate = DefaultMinDrainRate
	}
	if c.DrainGrace <= 0 {
		c.DrainGrace = DefaultDrainGrace
	}
	if c.ReserveTimeout <= 0 {
		c.ReserveTimeout = DefaultReserveTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Errors passed to Handler.OnClose (matched with errors.Is) and returned by
// Listen.
var (
	// ErrServerClosed: the connection was closed by Server.Close. It
	// carries wire.CodeClosed, like every package's ErrClosed, so
	// errors.Is matches it against wire.ErrClosed.
	ErrServerClosed error = &wire.Error{Code: wire.CodeClosed, Msg: "netio server closed"}
	// ErrInboundLimit: the connection held Config.MaxInbound unconsumed bytes.
	ErrInboundLimit = errors.New("netio: unconsumed input over limit")
	// ErrBadConsumed: OnData returned a consumed count outside [0, len(in)].
	ErrBadConsumed = errors.New("netio: handler consumed out of range")
	// ErrIdleTimeout: the connection was idle for Config.IdleTimeout.
	ErrIdleTimeout = errors.New("netio: idle timeout")
	// ErrWriteTimeout: the peer took none of the connection's queued output
	// for Config.WriteTimeout.
	ErrWriteTimeout = errors.New("netio: write timeout: peer not reading")
	// ErrSlowSink: the peer sent a payload it announced slower than
	// Config.MinSinkRate.
	ErrSlowSink = errors.New("netio: payload sent slower than the minimum rate")
	// ErrSlowDrain: the peer took the connection's queued output slower
	// than Config.MinDrainRate.
	ErrSlowDrain = errors.New("netio: queued output taken slower than the minimum rate")
	// ErrReserveTimeout: a reserve connection (Config.ReserveConns) was
	// open for Config.ReserveTimeout.
	ErrReserveTimeout = errors.New("netio: reserve connection timeout")
	// ErrReserveEvicted: a reserve connection not yet answered was closed
	// to give its slot to a newer one (the reserve was full).
	ErrReserveEvicted = errors.New("netio: reserve connection evicted by a newer one")
	// ErrEvictedUnproven: the connection, never vouched for by the
	// handler (Conn.Prove), gave its slot to a new one at MaxConns
	// (Config.EvictUnproven).
	ErrEvictedUnproven = errors.New("netio: unproven connection evicted at MaxConns")
	// ErrEvictedOverFairShare: the connection, proven for an owner holding
	// more than its fair share of MaxConns (fairshare.go), gave its slot to
	// a reserve connection promoted (Conn.Promote).
	ErrEvictedOverFairShare = errors.New("netio: connection of an owner over its fair share evicted at MaxConns")
	// ErrBadAddress: Listen was given an address it cannot bind.
	ErrBadAddress = errors.New("netio: bad listen address")
)

// Stats is a snapshot of a Server's counters, summed over its loops.
type Stats struct {
	Open     int64  // connections open now
	Accepted uint64 // connections accepted and opened
	Refused  uint64 // connections accepted and closed at once (MaxConns)
	// RefusedPerPeer counts connections accepted and closed at once
	// because their peer had MaxConnsPerPeer open.
	RefusedPerPeer uint64
	IdleClosed     uint64 // connections closed by IdleTimeout
	WriteTimeouts  uint64 // connections closed by WriteTimeout
	SlowSinks      uint64 // connections closed by MinSinkRate
	SlowDrains     uint64 // connections closed by MinDrainRate
	// AcceptBackoffs counts the times accept failed for lack of
	// descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) and the loop
	// stopped polling its listener for a while (10 ms, doubling to 1 s).
	AcceptBackoffs uint64
	Closed         uint64 // opened connections closed
	BytesIn        uint64 // bytes read from connections
	BytesOut       uint64 // bytes written to connections
	Reads          uint64 // read(2) calls that returned data
	Writevs        uint64 // writev(2) calls that wrote data
	Passes         uint64 // loop passes that handled at least one event
	Wakeups        uint64 // eventfd wake-ups handled
	Tasks          uint64 // posted functions run
	Paused         uint64 // times a connection stopped being read (MaxOutbound)
	// PausedTotal counts the times a connection stopped being read
	// because the output queued on all connections passed
	// MaxOutboundTotal; Queued is that total now, in bytes, as last counted
	// (output queued and promised, Conn.Expect), and QueuedLimit the
	// MaxOutboundTotal in force (0: none).
	PausedTotal uint64
	Queued      int64
	QueuedLimit int64
	// ReserveOpen is the reserve connections open now (Config.ReserveConns;
	// not in Open); Reserved counts the connections over MaxConns or
	// MaxConnsPerPeer opened on the reserve (counted in Accepted and
	// Closed too, not in Refused nor RefusedPerPeer); ReserveTimeouts
	// those closed by ReserveTimeout, ReserveEvictions those closed
	// unanswered to give their slot to a newer one.
	ReserveOpen      int64
	Reserved         uint64
	ReserveTimeouts  uint64
	ReserveEvictions uint64
	// UnprovenEvictions counts connections closed to give their slot to
	// a new one at MaxConns (Config.EvictUnproven); FairShareEvictions
	// those of them that were proven for an owner over its fair share,
	// for a reserve connection promoted (Conn.Promote; fairshare.go), and
	// Promoted those promotions.
	UnprovenEvictions  uint64
	FairShareEvictions uint64
	Promoted           uint64
	// OverOwner counts connections left unproven because their owner
	// had MaxProvenPerOwner proven already (Conn.ProveFor), once each.
	OverOwner uint64
	// Nudges counts the times a loop found another loop parked with
	// events waiting at two looks and readied the nudger (nudge.go).
	Nudges uint64
}
