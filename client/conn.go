// Package client is the Go client of the data plane: it speaks the wire
// protocol to storage nodes.
//
// Two levels:
//
//   - Conn is one connection driven by one goroutine: requests are buffered
//     by Send*, written by Flush, and replies read in order of arrival by
//     Recv. The bench tool drives it to pipeline requests with no allocation
//     per request.
//   - Client is safe for many goroutines: a pool of connections per node,
//     each multiplexing many requests in flight, matched by request id. A
//     caller's cancellation or deadline ends its own call only; a
//     connection is failed only by its peer or the network.
//
// Buffer lifetimes: a Response returned by Conn.Recv points into the Conn's
// reusable buffers and is valid until the next Recv. Client calls copy into
// caller-provided buffers or return memory the caller owns.
package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// ConnOptions configure a connection. Job, Token and Epoch are stamped on
// every request sent through the convenience methods.
type ConnOptions struct {
	Job, Token  []byte
	Epoch       uint64
	Limits      *wire.Limits // nil: wire.DefaultLimits
	BufferSize  int          // bufio size for each direction; default 64 KiB
	DialTimeout time.Duration
	NVMe        bool // route SendGet/SendPut to the node's NVMe tier
}

func (o *ConnOptions) limits() *wire.Limits {
	if o.Limits != nil {
		return o.Limits
	}
	l := wire.DefaultLimits()
	return &l
}

// Response is one reply as read by Conn.Recv. Meta and Payload are valid
// until the next Recv on the same Conn.
type Response struct {
	ID      uint64
	Op      wire.Op
	Code    wire.Code
	Flags   uint16
	Meta    []byte
	Payload []byte
}

// Err returns the reply's error (an *wire.Error), or nil for success.
func (r *Response) Err() error {
	h := wire.Header{Code: r.Code}
	return wire.ReplyError(&h, r.Meta)
}

// Conn is one data-plane connection used by one goroutine at a time.
type Conn struct {
	nc      net.Conn
	bw      *bufio.Writer
	br      *bufio.Reader
	enc     *wire.Encoder
	opts    ConnOptions
	lim     *wire.Limits
	nextID  uint64
	hdr     [wire.HeaderLen]byte
	meta    []byte
	payload []byte
}

// DialConn connects to a node.
func DialConn(ctx context.Context, addr string, opts ConnOptions) (*Conn, error) {
	d := net.Dialer{Timeout: opts.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return NewConn(nc, opts), nil
}

// NewConn wraps an established connection.
func NewConn(nc net.Conn, opts ConnOptions) *Conn {
	size := opts.BufferSize
	if size <= 0 {
		size = 64 << 10
	}
	return &Conn{
		nc: nc, bw: bufio.NewWriterSize(nc, size), br: bufio.NewReaderSize(nc, size),
		enc: wire.NewEncoder(), opts: opts, lim: opts.limits(),
	}
}

// Send buffers one request frame and returns its request id. The payload is
// copied into the write buffer (or written through when larger than it).
func (c *Conn) Send(op wire.Op, flags uint16, req *wire.Request, payload []byte) (uint64, error) {
	if int64(len(payload)) > c.lim.MaxPayload {
		return 0, wire.Errorf(wire.CodeTooLarge, "payload of %d bytes over the limit of %d", len(payload), c.lim.MaxPayload)
	}
	c.nextID++
	meta := c.enc.Request(req)
	h := wire.Header{Op: op, Flags: flags, ID: c.nextID, MetaLen: uint32(len(meta)), PayloadLen: uint32(len(payload))}
	wire.PutHeader(c.hdr[:], &h)
	if _, err := c.bw.Write(c.hdr[:]); err != nil {
		return 0, err
	}
	if _, err := c.bw.Write(meta); err != nil {
		return 0, err
	}
	if _, err := c.bw.Write(payload); err != nil {
		return 0, err
	}
	return c.nextID, nil
}

func (c *Conn) keyed(key []byte) wire.Request {
	return wire.Request{Job: c.opts.Job, Key: key, Token: c.opts.Token, Epoch: c.opts.Epoch}
}

func (c *Conn) tier() uint16 {
	if c.opts.NVMe {
		return wire.FlagTierNVMe
	}
	return 0
}

// SendGet buffers a get of key in the connection's job.
func (c *Conn) SendGet(key []byte) (uint64, error) {
	r := c.keyed(key)
	return c.Send(wire.OpGet, c.tier(), &r, nil)
}

// SendPut buffers a put of value under key with header flags.
func (c *Conn) SendPut(key, value []byte, flags uint16) (uint64, error) {
	r := c.keyed(key)
	return c.Send(wire.OpPut, flags|c.tier(), &r, value)
}

// Flush writes the buffered requests.
func (c *Conn) Flush() error { return c.bw.Flush() }

// Recv reads the next reply. Lengths are checked against the limits before
// any buffer grows.
func (c *Conn) Recv() (Response, error) { return c.RecvInto(nil) }

// RecvInto is Recv, reading the payload into dst when it fits (the returned
// Payload then aliases dst).
func (c *Conn) RecvInto(dst []byte) (Response, error) {
	h, err := c.readHeader()
	if err != nil {
		return Response{}, err
	}
	r := Response{ID: h.ID, Op: h.Op, Code: h.Code, Flags: h.Flags}
	if r.Meta, err = readInto(c.br, &c.meta, int(h.MetaLen)); err != nil {
		return r, err
	}
	if int(h.PayloadLen) <= len(dst) {
		r.Payload = dst[:h.PayloadLen]
		_, err = io.ReadFull(c.br, r.Payload)
		return r, err
	}
	r.Payload, err = readInto(c.br, &c.payload, int(h.PayloadLen))
	return r, err
}

func (c *Conn) readHeader() (wire.Header, error) {
	if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
		return wire.Header{}, err
	}
	h, err := wire.ParseHeader(c.hdr[:], c.lim)
	if err == nil && !h.Op.IsReply() {
		err = wire.Errorf(wire.CodeMalformed, "expected a reply, got %v", h.Op)
	}
	return h, err
}

// readInto reads n bytes into *buf, growing it if needed.
func readInto(r io.Reader, buf *[]byte, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	_, err := io.ReadFull(r, b)
	return b, err
}

// SetDeadline sets the underlying connection's deadline.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }
