package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Options configure a Client.
type Options struct {
	ConnsPerNode int          // connections kept to each node; default 2
	Limits       *wire.Limits // nil: wire.DefaultLimits
	DialTimeout  time.Duration
	// MaxIdle: a pooled connection unused for longer is closed and dialled
	// again before its next request, so that the request does not meet a
	// connection the node closed as idle. Default DefaultMaxIdle; negative:
	// never.
	MaxIdle time.Duration
	// Silence: a connection on which a caller waits for a reply, or a
	// frame is being written, and nothing moves for this long (no byte
	// read, and the socket's unsent bytes not falling) is failed, and its
	// calls with it (CodeUnavailable, naming the silence). Default
	// DefaultSilence; negative: never (see silence.go).
	Silence time.Duration
}

// DefaultMaxIdle is half a node's default idle timeout
// (netio.DefaultIdleTimeout, 2 minutes): a frozen Lambda that thaws finds
// its connections redialled, not reset by the node.
const DefaultMaxIdle = time.Minute

// Client sends requests to any number of nodes. It is safe for concurrent
// use: every connection multiplexes many requests in flight, and callers
// are independent (one's cancellation, deadline or error is its own; see
// muxConn).
type Client struct {
	opts   Options
	lim    wire.Limits
	mu     sync.RWMutex
	pools  map[string]*pool
	closed bool
}

// New returns a client; connections are dialled on first use.
func New(opts Options) *Client {
	if opts.ConnsPerNode <= 0 {
		opts.ConnsPerNode = 2
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxIdle == 0 {
		opts.MaxIdle = DefaultMaxIdle
	}
	if opts.Silence == 0 {
		opts.Silence = DefaultSilence
	}
	c := &Client{opts: opts, pools: make(map[string]*pool), lim: wire.DefaultLimits()}
	if opts.Limits != nil {
		c.lim = *opts.Limits
	}
	return c
}

// ErrClosed is returned by calls on a closed Client. It carries
// wire.CodeClosed, the one definition of "closed": errors.Is matches it
// against wire.ErrClosed and every other package's ErrClosed, and its
// message says it was this side that closed.
var ErrClosed error = &wire.Error{Code: wire.CodeClosed, Msg: "client closed"}

// Reply is a completed request. Payload aliases the dst given to Do when
// the value fit in it, and is otherwise memory the caller owns.
type Reply struct {
	Flags   uint16
	Meta    wire.Response
	Payload []byte
}

// Do sends one request to the node at addr and waits for its reply. An
// error reply is returned as an *wire.Error (match with errors.Is against
// the wire sentinels); a lost connection as an error matching
// wire.ErrUnavailable naming the node. NotSent tells an unavailable node
// that never saw the request (a failed dial, a connection known dead, a
// frame none of which could be written) from a connection lost after the
// request may have been written, whose outcome is unknown (sent.go).
//
// When ctx ends first, Do returns ctx.Err() (or the reply, if it had been
// read in full by then), and that is all it does to anyone: the other calls
// on the connection go on, and the connection stays in the pool. The
// request may or may not have reached the node. Do reads payload only
// until it returns and writes dst only until it returns.
func (c *Client) Do(ctx context.Context, addr string, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (Reply, error) {
	p, err := c.pool(addr)
	if err != nil {
		return Reply{}, notSent(err)
	}
	mc, err := p.conn(ctx)
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		mc = p.answeredConn() // a dial failed: a connection the node took serves
	}
	if mc == nil {
		return Reply{}, notSent(err)
	}
	return p.doFrom(ctx, mc, op, flags, req, payload, dst)
}

// doFrom makes a call on mc, a connection p handed out, and on another of
// p's connections, up to retiredTries times, when the call never reached
// the node: the pool retired mc before the call was put on it
// (errRetired), mc failed before the call's frame went whole (lostUnsent),
// or the node refused mc at its connection limit, serving none of its
// calls (limited.go).
func (p *pool) doFrom(ctx context.Context, mc *muxConn, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (Reply, error) {
	for tries := 0; ; tries++ {
		r, err := mc.do(ctx, op, flags, req, payload, dst)
		limited := atLimit(err) && !mc.answered.Load() // answered, it is the call's error
		switch {
		case limited:
			p.refused(mc)
		case servedBy(err):
			p.served(mc)
		}
		if err != errRetired && !limited && !lostUnsent(err) {
			return r, err
		}
		if tries == retiredTries {
			if err != errRetired {
				return r, notSent(err)
			}
			return Reply{}, notSent(&wire.Error{Code: wire.CodeUnavailable, Msg: fmt.Sprintf("node %s: %v, %d times", p.addr, err, tries+1)})
		}
		if err != errRetired {
			if mc = p.awaitAnswered(ctx); mc == nil {
				return r, notSent(err) // no connection the node took: the refusal, or the loss, stands
			}
			continue
		}
		if mc, err = p.conn(ctx); err != nil {
			return Reply{}, notSent(err)
		}
	}
}

// retiredTries bounds how often Do takes another connection for a call
// whose connection the pool retired before the call was put on it.
const retiredTries = 3

func (c *Client) pool(addr string) (*pool, error) {
	c.mu.RLock()
	p, closed := c.pools[addr], c.closed
	c.mu.RUnlock()
	if p != nil && !closed {
		return p, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	p = c.pools[addr]
	if p == nil {
		p = &pool{addr: addr, c: c, slots: make([]slot, c.opts.ConnsPerNode)}
		c.pools[addr] = p
	}
	return p, nil
}

// Close closes every connection; calls in flight fail.
func (c *Client) Close() error {
	c.mu.Lock()
	pools := c.pools
	c.pools, c.closed = map[string]*pool{}, true
	c.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	return nil
}

// pool is the set of connections to one node, used round robin; a dead
// connection is replaced on next use, as is one unused past MaxIdle or
// closed by the node while idle (closedByPeer).
//
// A dial runs on a goroutine of its own, bounded by the client's
// DialTimeout and by no caller's context: every caller that wants the slot
// meanwhile waits for that one dial with its own context. A caller that
// gives up (or arrived already cancelled) returns its context's error and
// leaves the dial to finish for the others; a dial that fails fails only the
// callers that were waiting for it, and the next call dials again.
type pool struct {
	addr   string
	c      *Client
	next   atomic.Uint32
	mu     sync.Mutex
	slots  []slot
	closed bool
	// After a refusal at the node's connection limit (limited.go): until
	// limited, callers whose slot has no connection borrow another's;
	// backoff is the while's length, limitGen counts refusals.
	limited  time.Time
	backoff  time.Duration
	limitGen uint64
	dials    int // dials under way
}

type slot struct {
	mc   *muxConn
	dial *dialing // the dial in progress, if any
}

// dialing is one dial in progress; mc or err is set before done closes.
type dialing struct {
	done chan struct{}
	mc   *muxConn
	err  error
	gen  uint64 // the pool's limitGen when the dial began (limited.go)
}

func (p *pool) conn(ctx context.Context) (*muxConn, error) {
	i := int(p.next.Add(1)) % len(p.slots)
	patient := true // wait, a little, for a new connection's first reply
	bounded := true // wait, a little, while maxGrowing connections grow
	for {
		p.mu.Lock()
		s := &p.slots[i]
		mc := p.usableLocked(s)
		var wait <-chan struct{}
		own := false   // waiting for the first reply on slot i's connection
		burst := false // waiting while maxGrowing connections grow
		if mc != nil && patient && mc.untried() {
			// A connection's first call goes alone (limited.go): this
			// call goes on another, or waits a little for that reply.
			if other := p.borrowLocked(i); other != nil {
				mc = other
			} else {
				mc, wait, own = nil, mc.tried, true
			}
		}
		if mc == nil && wait == nil && !p.closed {
			mc = p.borrowLocked(i) // slot i is dialled meanwhile
		}
		if mc != nil {
			mc.hand()
			p.mu.Unlock()
			return mc, nil
		}
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if wait == nil {
			d := s.dial
			if n, w := p.growingLocked(); d == nil && n >= maxGrowing && bounded && w != nil {
				wait, burst = w, true // wait a little for a dial or a first reply
			} else if d == nil {
				d = &dialing{done: make(chan struct{}), gen: p.limitGen}
				s.dial = d
				p.dials++
				go p.dial(i, d)
			}
			if d != nil {
				p.mu.Unlock()
				select {
				case <-d.done:
					if d.err != nil {
						return nil, d.err
					}
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				continue
			}
		}
		p.mu.Unlock()
		answered, err := waitFirst(ctx, wait)
		if err != nil {
			return nil, err
		}
		switch {
		case own && !answered:
			patient = false // slot i's first call is slow: go on its connection too
		case burst && !answered:
			bounded = false // the growing connections are slow: dial too
		}
	}
}

// usableLocked returns s's connection if it is live, neither idle past
// MaxIdle nor closed by the node while idle; such a one is closed and s
// emptied. p.mu is held.
func (p *pool) usableLocked(s *slot) *muxConn {
	mc := s.mc
	if mc == nil || mc.dead() {
		return nil
	}
	switch {
	case p.stale(mc):
		mc.fail(errIdleRedial)
		s.mc = nil
	case mc.closedByPeer():
		mc.fail(errPeerClosed)
		s.mc = nil
	default:
		return mc
	}
	return nil
}

// errIdleRedial closes a pooled connection left unused past MaxIdle.
var errIdleRedial = errors.New("client: connection idle past MaxIdle; redialled")

// stale reports whether mc has sent nothing for MaxIdle and has no call in
// flight: then the node may have closed it as idle, and it is retired
// (retireLocked) for the caller to close.
func (p *pool) stale(mc *muxConn) bool {
	max := p.c.opts.MaxIdle
	if max < 0 || time.Duration(time.Now().UnixNano()-mc.used.Load()) < max {
		return false
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.retireLocked(errIdleRedial)
}

// dial connects slot i for everyone waiting on d.
func (p *pool) dial(i int, d *dialing) {
	dl := net.Dialer{Timeout: p.c.opts.DialTimeout}
	nc, err := dl.Dial("tcp", p.addr)
	p.mu.Lock()
	p.slots[i].dial = nil
	p.dials--
	switch {
	case err != nil:
		d.err = dialErr(p.addr, err)
	case p.closed:
		_ = nc.Close()
		d.err = ErrClosed
	default:
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		d.mc = newMuxConn(nc, p.addr, &p.c.lim)
		d.mc.limitGen = d.gen
		if p.c.opts.Silence > 0 {
			go d.mc.watch(p.c.opts.Silence)
		}
		p.slots[i].mc = d.mc
	}
	p.mu.Unlock()
	close(d.done)
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, s := range p.slots {
		if s.mc != nil {
			s.mc.fail(ErrClosed)
		}
	}
}

// muxConn is one connection with many requests in flight, replies matched
// to calls by request id. Its rule is that callers are independent: a
// caller's cancellation, deadline or error ends that caller's call only,
// and the connection fails only when the peer or the network does.
//
// Writing. A caller takes wsem (a one-slot semaphore, so that waiting for
// it honours the caller's context) and writes its whole frame with one
// writev. If its context ends before any byte is written, the call is
// withdrawn. If it ends mid-frame, the rest of the frame is copied and a
// goroutine finishes writing it, keeping wsem meanwhile: the stream stays
// whole, the caller's payload is not read after the caller returned, and
// the reply is read for nobody.
//
// Reading. There is no reader goroutine in the common case: a caller
// waiting for its reply takes rmu and reads replies itself, its own and
// anyone else's, handing each to its call, until its own has come; then it
// wakes one other waiter to take over. An unpipelined call thus reads its
// own reply on its own goroutine, with no hand-off between goroutines
// (which costs as much as the round trip on loopback). The reading of a
// frame is resumable (rs records how far it got), so the holder of rmu can
// stop between any two reads of the socket and the next holder goes on
// from there. That is how a cancelled reader leaves: it stops, gives up its
// own call and returns its context's error, and the reading is left to the
// other waiters or, when none waits, to a drainer goroutine that reads the
// replies owed to nobody (those of calls given up, or the rest of the
// frame the reader left) and hands the reading back to callers as soon as
// one waits and the frame in hand is finished.
//
// Interrupting. A read or write blocked in the kernel can only be woken by
// a deadline, so a caller's context, when it ends, sets a deadline in the
// past for the half (read or write) the caller is using, and a caller
// giving up a reply that is being read sets one for the reader. A deadline
// is only ever a prompt, never a failure: whoever sees a timeout clears the
// deadline, then checks its own context and whether the call it reads into
// was given up, and otherwise goes on where it stopped. A late deadline
// (its caller had already left) costs one system call and nothing else;
// no caller's deadline is ever armed on the connection for a later time.
//
// dst. A reply's payload is read into its call's dst (when it fits) only by
// the holder of rmu, only while the call is the frame being read (rs.cl),
// and only until the call is abandoned. A caller that gives up a call not
// yet being read marks it abandoned in pending and returns at once. A caller
// that gives up a call being read marks it abandoned and waits until the
// reader has noticed (the reader is interrupted to notice at once), set the
// rest of the frame to be discarded and closed done, or takes rmu and does
// so itself. No one writes dst after done is closed, and a caller returns
// before done is closed only when its call never left pending.
type muxConn struct {
	nc   net.Conn
	addr string
	lim  *wire.Limits

	wsem chan struct{} // one slot, held while a frame is written
	enc  *wire.Encoder
	hdr  [wire.HeaderLen]byte

	rmu  sync.Mutex // held by the goroutine reading replies
	br   *bufio.Reader
	rs   readState     // the frame being read; belongs to the holder of rmu
	wake chan struct{} // a waiter should try to become the reader

	used atomic.Int64 // when a request was last sent (Unix ns), for MaxIdle
	// heard counts the reads that returned bytes of frames answering
	// requests in flight (hear), for the silence watch.
	heard atomic.Uint64
	// gone is closed once the connection has failed (fail).
	gone     chan struct{}
	goneOnce sync.Once

	mu       sync.Mutex
	nextID   uint64
	pending  map[uint64]*call // calls whose reply has not begun to be read
	waiting  int              // callers in wait
	orphans  int              // abandoned calls in pending: replies owed to nobody
	midFrame bool             // a reader left a frame half read (a hint for leave)
	draining bool             // a drainer goroutine runs or is starting
	err      error
	// retired: the pool took the connection out of service while no call
	// was on it (retireLocked); a call handed it before registers nothing
	// and goes to another connection (errRetired).
	retired bool
	// inHand counts the calls the pool has handed the connection that
	// have not yet been put on it (do): the pool does not retire it
	// meanwhile.
	inHand int
	// limitGen is the pool's count of refusals at the node's connection
	// limit when the connection was dialled (limited.go).
	limitGen uint64
	// answered is set once a reply has come on the connection: the node
	// took it (limited.go); tried is closed then, or when it fails.
	answered  atomic.Bool
	tried     chan struct{}
	triedOnce sync.Once
}

// hand notes that the pool hands mc to a call (do undoes it).
func (mc *muxConn) hand() {
	mc.mu.Lock()
	mc.inHand++
	mc.mu.Unlock()
}

// unhand undoes hand for a call that ends before it is put on mc.
func (mc *muxConn) unhand() {
	mc.mu.Lock()
	mc.inHand--
	mc.mu.Unlock()
}

// errRetired is mc.do's answer for a call handed a connection that the
// pool retired (idle past MaxIdle, or closed by its node while idle)
// before the call was put on it: nothing was sent, and Client.Do takes
// another connection.
var errRetired = errors.New("client: connection retired by the pool before the call was put on it")

// retireLocked takes mc out of service for why if no call is on it nor
// handed it (inHand), in the same step as the look, under mc.mu, where a
// call registers before it sends: so no call can be on a connection the
// pool then closes. (A hostile trial with MaxIdle 20 us saw calls
// retired before they were put on their connection 4 times in a row
// without inHand, about 1 in 4,000.) It
// reports whether it did; the caller closes mc (fail). Before, the look
// and the close were apart, and a caller handed the connection just
// before registered in between and failed (a hostile trial: 224 of 586,586
// calls with MaxIdle 1 ms, "connection idle past MaxIdle; redialled").
func (mc *muxConn) retireLocked(why error) bool {
	if len(mc.pending) > 0 || mc.waiting > 0 || mc.inHand > 0 || mc.err != nil {
		return false
	}
	mc.retired = true
	mc.err = connErr(mc.addr, why)
	return true
}

// eagerPayload is the most of a reply's payload allocated before its
// bytes arrive, when the caller gave no buffer that fits (4 MiB: a value
// up to it is read with no copy). A larger payload's buffer grows fourfold
// as the bytes come (growPayload), so a node that claims 64 MiB and sends
// less costs at most about four times what it sent: before, each such
// reply allocated all it claimed (conn.py's RECV_STEP does the same in
// Python).
const eagerPayload = 4 << 20

// growPayload returns b, full, grown fourfold (to at most n bytes) with
// its bytes kept.
func growPayload(b []byte, n int) []byte {
	nb := make([]byte, min(n, 4*len(b)))
	copy(nb, b)
	return nb
}

// readState is how far the reading of the current frame has got.
type readState struct {
	hdr  [wire.HeaderLen]byte
	body bool // the header is parsed; reading meta, then payload
	off  int  // bytes read of the header, or of meta and payload
	h    wire.Header
	cl   *call // the call the frame answers; nil: discard the frame
	// owed: the frame answers a request in flight (its caller waiting,
	// or given up): only such a frame's bytes are heard (hear).
	owed bool
	// strayed: the last frame whose header was read was stray (owed
	// nobody): the next header's bytes are heard only once it is whole
	// and owed.
	strayed bool
}

func (rs *readState) mid() bool { return rs.body || rs.off > 0 }

type call struct {
	id      uint64
	op      wire.Op // the request's: its reply must be op's reply
	dst     []byte
	h       wire.Header
	meta    []byte
	payload []byte
	err     error // set before done closes
	done    chan struct{}
	// abandoned is set by a caller giving up the call; from then on no
	// reader writes its dst.
	abandoned atomic.Bool
	// state is what the caller is doing, for its context's AfterFunc to
	// know which deadline would wake it.
	state atomic.Int32
}

const (
	stWaiting int32 = iota // neither writing nor reading: its select sees ctx
	stWriting
	stReading
)

// errDropped marks a call whose reply was discarded because it was given up.
var errDropped = errors.New("client: reply dropped")

// aLongTimeAgo is the deadline that wakes a blocked read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func newMuxConn(nc net.Conn, addr string, lim *wire.Limits) *muxConn {
	mc := &muxConn{nc: nc, addr: addr, lim: lim, enc: wire.NewEncoder(), pending: make(map[uint64]*call),
		br: bufio.NewReaderSize(nc, 64<<10), wake: make(chan struct{}, 1), wsem: make(chan struct{}, 1),
		gone: make(chan struct{}), tried: make(chan struct{})}
	mc.used.Store(time.Now().UnixNano())
	return mc
}

func (mc *muxConn) dead() bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.err != nil
}

func (mc *muxConn) do(ctx context.Context, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (Reply, error) {
	if int64(len(payload)) > mc.lim.MaxPayload {
		mc.unhand()
		return Reply{}, wire.Errorf(wire.CodeTooLarge, "payload of %d bytes over the frame limit of %d", len(payload), mc.lim.MaxPayload)
	}
	if err := ctx.Err(); err != nil {
		mc.unhand()
		return Reply{}, err
	}
	cl := &call{op: op, dst: dst, done: make(chan struct{})}
	mc.used.Store(time.Now().UnixNano())
	mc.mu.Lock()
	mc.inHand--
	if mc.err != nil {
		err, retired := mc.err, mc.retired
		mc.mu.Unlock()
		if retired {
			return Reply{}, errRetired
		}
		return Reply{}, notSent(err) // known dead before the request was put on it
	}
	mc.nextID++
	cl.id = mc.nextID
	mc.pending[cl.id] = cl
	mc.mu.Unlock()
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { mc.interrupt(cl) })
	}
	err := mc.send(ctx, cl, op, flags, req, payload)
	if err == nil {
		err = mc.wait(ctx, cl)
	}
	if stop != nil {
		stop()
	}
	if err != nil {
		return Reply{}, err
	}
	if cl.err != nil {
		return Reply{}, cl.err
	}
	r := Reply{Flags: cl.h.Flags, Payload: cl.payload}
	if err := wire.DecodeResponse(cl.meta, &r.Meta); err != nil {
		// Name the node: before, "wire: malformed: Response: ..." said
		// nothing of which node sent it (a hostile trial).
		return r, wire.Errorf(wire.CodeMalformed, "node %s: reply to request %d, a %v: %v", mc.addr, cl.id, op, err)
	}
	if cl.h.Code != wire.CodeOK {
		msg := r.Meta.Message
		if !cl.h.Code.Known() {
			msg = fmt.Sprintf("node %s answered request %d, a %v, with unknown code %d: %s", mc.addr, cl.id, op, cl.h.Code, msg)
		}
		return r, &wire.Error{Code: cl.h.Code, Msg: msg, Epoch: r.Meta.Epoch}
	}
	if field, bad := implausible(&r.Meta); bad {
		return r, wire.Errorf(wire.CodeMalformed, "node %s: reply to request %d, a %v: %s", mc.addr, cl.id, op, field)
	}
	return r, nil
}

// implausible names a numeric field of a reply no node sends: a size
// (Size: a value's, a job's usage, bytes freed; Capacity; an entry's
// size) negative or over wire.MaxJobBytes, or a count past int64. A
// hostile trial's node answered a usage request with -5 and a stat with
// size -5, and the SDK returned them with no error. A few compares;
// entries only in listings.
func implausible(m *wire.Response) (string, bool) {
	switch {
	case !bytesFigure(m.Size):
		return fmt.Sprintf("size %d out of range [0, %d]", m.Size, int64(wire.MaxJobBytes)), true
	case !bytesFigure(m.Capacity):
		return fmt.Sprintf("capacity %d out of range [0, %d]", m.Capacity, int64(wire.MaxJobBytes)), true
	case m.Count > math.MaxInt64:
		return fmt.Sprintf("count %d over the int64 range", m.Count), true
	}
	for i := range m.Entries {
		if e := &m.Entries[i]; !bytesFigure(e.Size) {
			return fmt.Sprintf("size %d of entry %q out of range [0, %d]", e.Size, shortKey(e.Key), int64(wire.MaxJobBytes)), true
		}
	}
	return "", false
}

// bytesFigure reports whether n is a byte count a node may send: 0 to
// wire.MaxJobBytes.
func bytesFigure(n int64) bool { return n >= 0 && n <= wire.MaxJobBytes }

// shortKey is key cut to 64 bytes, for an error.
func shortKey(key []byte) []byte { return key[:min(len(key), 64)] }

// interrupt runs when cl's context ends: it wakes the caller if it is
// blocked writing or reading. A caller that is only waiting sees its
// context in its select.
func (mc *muxConn) interrupt(cl *call) {
	switch cl.state.Load() {
	case stWriting:
		_ = mc.nc.SetWriteDeadline(aLongTimeAgo)
	case stReading:
		_ = mc.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// send writes cl's request frame. When it returns an error, cl is settled:
// withdrawn or abandoned with ctx's error, or failed with the connection.
func (mc *muxConn) send(ctx context.Context, cl *call, op wire.Op, flags uint16, req *wire.Request, payload []byte) error {
	select {
	case mc.wsem <- struct{}{}:
	default:
		select {
		case mc.wsem <- struct{}{}:
		case <-ctx.Done():
			mc.withdraw(cl)
			return ctx.Err()
		}
	}
	// Publish the state before looking at ctx: either interrupt sees
	// stWriting, or this sees the context ended.
	cl.state.Store(stWriting)
	if err := ctx.Err(); err != nil {
		cl.state.Store(stWaiting)
		<-mc.wsem
		mc.withdraw(cl)
		return err
	}
	meta := mc.enc.Request(req)
	h := wire.Header{Op: op, Flags: flags, ID: cl.id, MetaLen: uint32(len(meta)), PayloadLen: uint32(len(payload))}
	wire.PutHeader(mc.hdr[:], &h)
	bufs := net.Buffers{mc.hdr[:], meta}
	if len(payload) > 0 {
		bufs = append(bufs, payload)
	}
	size := int64(wire.HeaderLen + len(meta) + len(payload))
	var written int64
	for {
		n, err := bufs.WriteTo(mc.nc) // consumes what it wrote from bufs
		written += n
		if err == nil {
			cl.state.Store(stWaiting)
			<-mc.wsem
			return nil
		}
		if !isTimeout(err) {
			cl.state.Store(stWaiting)
			<-mc.wsem
			// Part of the frame at most reached the socket: a node
			// executes only a frame it read whole.
			return notSent(mc.fail(err))
		}
		_ = mc.nc.SetWriteDeadline(time.Time{})
		if ctx.Err() == nil {
			continue // a late deadline from a call that has left
		}
		cl.state.Store(stWaiting)
		if written == 0 {
			<-mc.wsem
			mc.withdraw(cl)
			return ctx.Err()
		}
		rest := make([]byte, 0, size-written)
		for _, b := range bufs {
			rest = append(rest, b...)
		}
		go mc.finishWrite(rest)
		mc.mu.Lock()
		mc.orphan(cl)
		start := mc.needDrainer()
		mc.mu.Unlock()
		if start {
			go mc.drain()
		}
		return ctx.Err()
	}
}

// finishWrite writes the rest of a frame whose caller left mid-write. It
// holds wsem, taken by that caller, and releases it.
func (mc *muxConn) finishWrite(rest []byte) {
	defer func() { <-mc.wsem }()
	for len(rest) > 0 {
		n, err := mc.nc.Write(rest)
		rest = rest[n:]
		if err != nil && !isTimeout(err) {
			mc.fail(err)
			return
		}
		if err != nil {
			_ = mc.nc.SetWriteDeadline(time.Time{}) // late: nobody here has a context
		}
	}
}

// withdraw takes back a call none of whose frame was sent.
func (mc *muxConn) withdraw(cl *call) {
	mc.mu.Lock()
	if mc.pending[cl.id] == cl {
		delete(mc.pending, cl.id)
	}
	mc.mu.Unlock()
}

// orphan gives up a call whose reply has not begun to be read: the reply
// will be read for nobody. It reports false if the call is not pending (a
// reader has it, or the connection failed). mc.mu is held.
func (mc *muxConn) orphan(cl *call) bool {
	cl.abandoned.Store(true)
	if mc.pending[cl.id] != cl {
		return false
	}
	mc.orphans++
	return true
}

// needDrainer reports whether replies are owed to nobody while no caller
// waits to read them; if so it records that a drainer is starting, which
// the caller must then start. mc.mu is held.
func (mc *muxConn) needDrainer() bool {
	if mc.waiting == 0 && !mc.draining && mc.err == nil && (mc.orphans > 0 || mc.midFrame) {
		mc.draining = true
		return true
	}
	return false
}

// wait returns when cl is answered or failed (nil: the outcome is in cl),
// reading replies itself whenever no one else is; or returns ctx's error
// once cl is given up, which is at once unless its reply is being read.
func (mc *muxConn) wait(ctx context.Context, cl *call) error {
	mc.mu.Lock()
	mc.waiting++
	mc.mu.Unlock()
	defer mc.leave()
	for {
		if mc.rmu.TryLock() {
			err := mc.lead(ctx, cl)
			mc.rmu.Unlock()
			return err
		}
		select {
		case <-cl.done:
			return nil
		case <-mc.wake:
		case <-ctx.Done():
			return mc.giveUp(ctx, cl)
		}
	}
}

// leave is a waiter's last act: if it was the last one and replies are
// owed to nobody, a drainer reads them; and it passes on the wake token,
// which it may hold and another waiter need.
func (mc *muxConn) leave() {
	mc.mu.Lock()
	mc.waiting--
	start := mc.needDrainer()
	mc.mu.Unlock()
	if start {
		go mc.drain()
	}
	mc.nudge()
}

// giveUp is wait's end for a caller whose context ended while it was not
// reading.
func (mc *muxConn) giveUp(ctx context.Context, cl *call) error {
	mc.mu.Lock()
	pending := mc.orphan(cl)
	mc.mu.Unlock()
	if pending {
		return ctx.Err()
	}
	// A reader has begun the reply, maybe into dst: wait until it lets go,
	// waking it in case it is blocked in the middle of this very reply.
	select {
	case <-cl.done:
		return settled(ctx, cl)
	default:
	}
	_ = mc.nc.SetReadDeadline(aLongTimeAgo)
	for {
		select {
		case <-cl.done:
			return settled(ctx, cl)
		case <-mc.wake: // the reader left: drop the reply ourselves
			if mc.rmu.TryLock() {
				err := mc.lead(ctx, cl)
				mc.rmu.Unlock()
				return err
			}
		}
	}
}

// settled is the outcome of a given-up call whose done has closed: ctx's
// error if its reply was dropped, else nil (the reply, or the connection's
// error, is in cl).
func settled(ctx context.Context, cl *call) error {
	if cl.err == errDropped {
		return ctx.Err()
	}
	return nil
}

// lead reads replies, holding rmu, until cl's has come (nil), ctx ends
// (ctx.Err(), cl given up) or the connection fails (its error).
func (mc *muxConn) lead(ctx context.Context, cl *call) error {
	// Publish the state before looking at ctx: either interrupt sees
	// stReading and sets the read deadline, or this sees the context ended.
	cl.state.Store(stReading)
	defer cl.state.Store(stWaiting)
	mc.dropAbandoned()
	cancelled := ctx.Err() != nil
	for {
		select {
		case <-cl.done:
			return settled(ctx, cl)
		default:
		}
		if cancelled {
			cl.abandoned.Store(true)
			mc.dropAbandoned()
			mc.mu.Lock()
			mc.orphan(cl)
			if mc.rs.mid() {
				mc.midFrame = true
			}
			mc.mu.Unlock()
			return ctx.Err()
		}
		err := mc.readFrame()
		if err == nil {
			continue
		}
		if !isTimeout(err) {
			return mc.failRead(err)
		}
		// A prompt: ours if ctx ended, or a caller's giving up the reply
		// being read, or late. Clear it, then look at both.
		_ = mc.nc.SetReadDeadline(time.Time{})
		mc.dropAbandoned()
		cancelled = ctx.Err() != nil
	}
}

// drain reads, on a goroutine of its own, the replies owed to nobody
// (those of calls given up, and the rest of a frame a cancelled reader
// left) while no caller waits to read. It hands the reading back as soon
// as a caller waits and the frame in hand is finished.
func (mc *muxConn) drain() {
	mc.rmu.Lock()
	for {
		mc.dropAbandoned()
		mc.mu.Lock()
		mid := mc.rs.mid()
		if mc.err != nil || !mid && (mc.waiting > 0 || mc.orphans == 0) {
			mc.draining, mc.midFrame = false, mid
			mc.mu.Unlock()
			break
		}
		mc.mu.Unlock()
		if err := mc.readFrame(); err != nil {
			if isTimeout(err) {
				_ = mc.nc.SetReadDeadline(time.Time{}) // a caller giving up a reply, or late
			} else {
				mc.failRead(err)
			}
		}
	}
	mc.rmu.Unlock()
	mc.nudge()
}

// dropAbandoned lets go of the call of the frame being read if its caller
// gave it up: the rest of the frame is discarded and done closed, after
// which nothing writes the call's dst. The caller holds rmu.
func (mc *muxConn) dropAbandoned() {
	if cl := mc.rs.cl; cl != nil && cl.abandoned.Load() {
		mc.rs.cl = nil
		cl.err = errDropped
		close(cl.done)
	}
}

// nudge asks one waiter, if any, to try to become the reader.
func (mc *muxConn) nudge() {
	select {
	case mc.wake <- struct{}{}:
	default:
	}
}

// readFrame reads (the rest of) the current frame, handing it to its call
// and closing the call's done when complete. It returns at the first read
// error with its progress kept in rs: after a timeout, it can be called
// again, by any holder of rmu, to go on. The caller holds rmu.
func (mc *muxConn) readFrame() error {
	rs := &mc.rs
	if !rs.body {
		for rs.off < wire.HeaderLen {
			n, err := mc.br.Read(rs.hdr[rs.off:])
			rs.off += n
			if err != nil {
				return err
			}
			// A header arriving in pieces is movement, unless it may be
			// another stray one.
			mc.hear(rs.off < wire.HeaderLen && !rs.strayed)
		}
		h, err := wire.ParseHeader(rs.hdr[:], mc.lim)
		if err == nil && !h.Op.IsReply() {
			err = wire.Errorf(wire.CodeMalformed, "expected a reply, got %v", h.Op)
		}
		if err != nil {
			return err
		}
		if h.Code != wire.CodeLimit && !mc.answered.Load() {
			mc.answered.Store(true)
			mc.triedOnce.Do(func() { close(mc.tried) })
		}
		mc.mu.Lock()
		cl, owed := mc.pending[h.ID]
		delete(mc.pending, h.ID)
		if cl != nil && cl.abandoned.Load() {
			mc.orphans--
			cl = nil
		}
		mc.mu.Unlock()
		if cl != nil && h.Op != cl.op.Reply() {
			// Not the reply to the request of that id: the stream is out
			// of step. Before, a put's reply sent for a get, payload and
			// all, was taken for the get's value (a hostile trial).
			rs.cl = cl // failed with the connection (failRead)
			return wire.Errorf(wire.CodeMalformed, "%v to request %d, a %v", h.Op, h.ID, cl.op)
		}
		rs.body, rs.off, rs.h, rs.cl, rs.owed, rs.strayed = true, 0, h, cl, owed, !owed
		mc.hear(owed)
		if cl != nil {
			cl.h = h
			cl.meta = make([]byte, h.MetaLen)
			switch n := int(h.PayloadLen); {
			case n <= cap(cl.dst):
				cl.payload = cl.dst[:n]
			default:
				cl.payload = make([]byte, min(n, eagerPayload)) // grown as it arrives
			}
		}
	}
	metaLen := int(rs.h.MetaLen)
	total := metaLen + int(rs.h.PayloadLen)
	for rs.off < total {
		var n int
		var err error
		switch {
		case rs.cl == nil:
			n, err = mc.br.Discard(total - rs.off)
		case rs.off < metaLen:
			n, err = mc.br.Read(rs.cl.meta[rs.off:])
		default:
			p := rs.off - metaLen
			if p == len(rs.cl.payload) {
				rs.cl.payload = growPayload(rs.cl.payload, int(rs.h.PayloadLen))
			}
			n, err = mc.br.Read(rs.cl.payload[p:])
		}
		rs.off += n
		if err != nil {
			return err
		}
		mc.hear(rs.owed)
	}
	cl, code := rs.cl, rs.h.Code
	rs.body, rs.off, rs.cl = false, 0, nil
	if cl != nil {
		close(cl.done)
	}
	if code == wire.CodeLimit && !mc.answered.Load() {
		mc.failLimited() // refused at the node's limit: it serves none of the others
	}
	return nil
}

// hear counts a read of a frame for the silence watch when it moves
// (the frame answers a request in flight, or part of a header came). A
// stray frame, whose id no request in flight has, is read and discarded,
// not failing the connection (a node may answer what the client no
// longer tracks), but is not heard: a hostile trial's node sent a stray
// reply header every 500 ms and never the reply, and a get with Silence
// 2 s waited out its whole 20 s context. After a stray frame, nor are the
// pieces of the next header until it proves owed (a node trickling stray
// headers).
func (mc *muxConn) hear(moves bool) {
	if moves {
		mc.heard.Add(1)
	}
}

// failRead fails the connection on a read error and fails the call of the
// frame being read, if any. The caller holds rmu.
func (mc *muxConn) failRead(err error) error {
	ferr := mc.fail(err)
	if cl := mc.rs.cl; cl != nil {
		cl.err = ferr
		close(cl.done)
	}
	mc.rs.body, mc.rs.off, mc.rs.cl = false, 0, nil
	return ferr
}

// fail marks the connection dead, fails every pending call and returns the
// connection's error. Only errors of the peer or the network (or Close)
// come here, never a caller's context.
func (mc *muxConn) fail(err error) error {
	mc.mu.Lock()
	if mc.err == nil {
		mc.err = connErr(mc.addr, err)
	}
	pending := mc.pending
	mc.pending = make(map[uint64]*call)
	mc.orphans = 0
	ferr := mc.err
	mc.mu.Unlock()
	mc.goneOnce.Do(func() { close(mc.gone) })
	mc.triedOnce.Do(func() { close(mc.tried) })
	_ = mc.nc.Close()
	for _, cl := range pending {
		cl.err = ferr
		close(cl.done)
	}
	// A waiter whose reply was left half read by a reader that has gone
	// must take rmu to learn of the failure.
	mc.nudge()
	return ferr
}
