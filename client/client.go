package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
}

// Client sends requests to any number of nodes. It is safe for concurrent
// use: every connection multiplexes many requests in flight.
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
	c := &Client{opts: opts, pools: make(map[string]*pool), lim: wire.DefaultLimits()}
	if opts.Limits != nil {
		c.lim = *opts.Limits
	}
	return c
}

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("client: closed")

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
// wire.ErrUnavailable naming the node.
func (c *Client) Do(ctx context.Context, addr string, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (Reply, error) {
	p, err := c.pool(addr)
	if err != nil {
		return Reply{}, err
	}
	mc, err := p.conn(ctx)
	if err != nil {
		return Reply{}, err
	}
	return mc.do(ctx, op, flags, req, payload, dst)
}

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
		p = &pool{addr: addr, c: c, conns: make([]*muxConn, c.opts.ConnsPerNode)}
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
// connection is replaced on next use.
type pool struct {
	addr  string
	c     *Client
	next  atomic.Uint32
	mu    sync.Mutex
	conns []*muxConn
}

func (p *pool) conn(ctx context.Context) (*muxConn, error) {
	i := int(p.next.Add(1)) % len(p.conns)
	p.mu.Lock()
	defer p.mu.Unlock()
	if mc := p.conns[i]; mc != nil && !mc.dead() {
		return mc, nil
	}
	d := net.Dialer{Timeout: p.c.opts.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, &wire.Error{Code: wire.CodeUnavailable, Msg: fmt.Sprintf("node %s: %v", p.addr, err)}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	mc := newMuxConn(nc, p.addr, &p.c.lim)
	p.conns[i] = mc
	return mc, nil
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, mc := range p.conns {
		if mc != nil {
			mc.fail(ErrClosed)
		}
	}
}

// muxConn is one connection with many requests in flight. Writers take
// wmu for one writev of a whole frame. There is no reader goroutine: a
// caller waiting for its reply takes rmu and reads replies itself, handing
// each to the call it answers, until its own has come; then it wakes one
// other waiter to take over. An unpipelined call thus reads its own reply
// on its own goroutine, with no hand-off between goroutines (which cost as
// much as the round trip on loopback).
type muxConn struct {
	nc   net.Conn
	addr string
	lim  *wire.Limits

	wmu sync.Mutex
	enc *wire.Encoder
	hdr [wire.HeaderLen]byte

	rmu  sync.Mutex // held by the goroutine reading replies
	br   *bufio.Reader
	rhdr [wire.HeaderLen]byte
	wake chan struct{} // a waiter should try to become the reader

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*call
	err     error
}

type call struct {
	dst     []byte
	h       wire.Header
	meta    []byte
	payload []byte
	err     error
	done    chan struct{}
}

func newMuxConn(nc net.Conn, addr string, lim *wire.Limits) *muxConn {
	return &muxConn{nc: nc, addr: addr, lim: lim, enc: wire.NewEncoder(), pending: make(map[uint64]*call),
		br: bufio.NewReaderSize(nc, 64<<10), wake: make(chan struct{}, 1)}
}

func (mc *muxConn) dead() bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.err != nil
}

func (mc *muxConn) do(ctx context.Context, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (Reply, error) {
	if int64(len(payload)) > mc.lim.MaxPayload {
		return Reply{}, wire.Errorf(wire.CodeTooLarge, "payload of %d bytes over the frame limit of %d", len(payload), mc.lim.MaxPayload)
	}
	cl := &call{dst: dst, done: make(chan struct{})}
	mc.mu.Lock()
	if mc.err != nil {
		err := mc.err
		mc.mu.Unlock()
		return Reply{}, err
	}
	mc.nextID++
	id := mc.nextID
	mc.pending[id] = cl
	mc.mu.Unlock()
	if err := mc.send(op, flags, id, req, payload); err != nil {
		mc.fail(err)
	}
	if err := mc.wait(ctx, id, cl); err != nil {
		return Reply{}, err
	}
	if cl.err != nil {
		return Reply{}, cl.err
	}
	r := Reply{Flags: cl.h.Flags, Payload: cl.payload}
	if err := wire.DecodeResponse(cl.meta, &r.Meta); err != nil {
		return r, err
	}
	if cl.h.Code != wire.CodeOK {
		return r, &wire.Error{Code: cl.h.Code, Msg: r.Meta.Message, Epoch: r.Meta.Epoch}
	}
	return r, nil
}

// wait returns when cl is answered (or failed), reading replies itself
// whenever no one else is; or returns ctx's error if cancelled before the
// reply is being read.
func (mc *muxConn) wait(ctx context.Context, id uint64, cl *call) error {
	defer mc.nudge() // whoever leaves may hold the wake token another needs
	for {
		if mc.rmu.TryLock() {
			// A reader cannot leave its read half done, so cancelling
			// it interrupts the read, which fails the connection: the
			// calls waiting on it get an error and the pool redials.
			stop := context.AfterFunc(ctx, func() { _ = mc.nc.SetReadDeadline(time.Now()) })
			err := mc.readUntil(cl)
			stop()
			mc.rmu.Unlock()
			if err != nil {
				mc.fail(err)
			}
		}
		select {
		case <-cl.done:
			return nil
		default:
		}
		select {
		case <-cl.done:
			return nil
		case <-mc.wake:
		case <-ctx.Done():
			mc.mu.Lock()
			_, waiting := mc.pending[id]
			delete(mc.pending, id)
			mc.mu.Unlock()
			if waiting {
				return ctx.Err()
			}
			<-cl.done // a reader has the call: let it finish with dst
			return nil
		}
	}
}

// nudge asks one waiter, if any, to try to become the reader.
func (mc *muxConn) nudge() {
	select {
	case mc.wake <- struct{}{}:
	default:
	}
}

// send writes one frame with a single writev.
func (mc *muxConn) send(op wire.Op, flags uint16, id uint64, req *wire.Request, payload []byte) error {
	mc.wmu.Lock()
	defer mc.wmu.Unlock()
	meta := mc.enc.Request(req)
	h := wire.Header{Op: op, Flags: flags, ID: id, MetaLen: uint32(len(meta)), PayloadLen: uint32(len(payload))}
	wire.PutHeader(mc.hdr[:], &h)
	bufs := net.Buffers{mc.hdr[:], meta}
	if len(payload) > 0 {
		bufs = append(bufs, payload)
	}
	_, err := bufs.WriteTo(mc.nc)
	return err
}

// readUntil reads replies, handing each to its call, until mine is done.
// The caller holds rmu.
func (mc *muxConn) readUntil(mine *call) error {
	for {
		select {
		case <-mine.done:
			return nil
		default:
		}
		if _, err := io.ReadFull(mc.br, mc.rhdr[:]); err != nil {
			return err
		}
		h, err := wire.ParseHeader(mc.rhdr[:], mc.lim)
		if err != nil {
			return err
		}
		mc.mu.Lock()
		cl := mc.pending[h.ID]
		delete(mc.pending, h.ID)
		mc.mu.Unlock()
		if err := mc.readReply(mc.br, &h, cl); err != nil {
			return err
		}
	}
}

// readReply reads the reply's body into the call (or drops it when the
// call was cancelled) and wakes the caller.
func (mc *muxConn) readReply(br *bufio.Reader, h *wire.Header, cl *call) error {
	if cl == nil {
		_, err := br.Discard(int(h.MetaLen) + int(h.PayloadLen))
		return err
	}
	defer close(cl.done)
	cl.h = *h
	cl.meta = make([]byte, h.MetaLen)
	if _, err := io.ReadFull(br, cl.meta); err != nil {
		cl.err = err
		return err
	}
	if int(h.PayloadLen) <= cap(cl.dst) {
		cl.payload = cl.dst[:h.PayloadLen]
	} else {
		cl.payload = make([]byte, h.PayloadLen)
	}
	if _, err := io.ReadFull(br, cl.payload); err != nil {
		cl.err = err
		return err
	}
	return nil
}

// fail marks the connection dead and fails every call waiting on it.
func (mc *muxConn) fail(err error) {
	mc.mu.Lock()
	if mc.err == nil {
		mc.err = &wire.Error{Code: wire.CodeUnavailable, Msg: fmt.Sprintf("node %s: connection lost: %v", mc.addr, err)}
	}
	pending := mc.pending
	mc.pending = make(map[uint64]*call)
	ferr := mc.err
	mc.mu.Unlock()
	_ = mc.nc.Close()
	for _, cl := range pending {
		cl.err = ferr
		close(cl.done)
	}
}
