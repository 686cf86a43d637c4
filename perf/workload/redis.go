package workload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pocketstore/pocket/perf/resp"
)

// Redis is a minimal Redis client: GET, SET, EXISTS and DEL over plain TCP
// with a small pool of connections, one request in flight on each.
// Commands are formatted by perf/resp; replies are decoded by readReply,
// which reads a GET's value straight into the caller's buffer.
type Redis struct {
	addr  string
	conns chan *redisConn // idle connections
	slots chan struct{}   // one token per connection that may exist
}

type redisConn struct {
	nc net.Conn
	w  *resp.Writer
	r  *bufio.Reader
}

// ErrRedis wraps an error reply from the server.
var ErrRedis = errors.New("workload: redis error reply")

// maxRedisBulk bounds a reply's value before anything is allocated
// (Redis's own proto-max-bulk-len).
const maxRedisBulk = resp.DefaultMaxBulk

// NewRedis returns a client of the server at addr with at most conns
// connections, dialed when first needed.
func NewRedis(addr string, conns int) *Redis {
	conns = max(conns, 1)
	r := &Redis{addr: addr, conns: make(chan *redisConn, conns), slots: make(chan struct{}, conns)}
	for range conns {
		r.slots <- struct{}{}
	}
	return r
}

// conn takes an idle connection, or dials one if the pool has room.
func (r *Redis) conn(ctx context.Context) (*redisConn, error) {
	select {
	case c := <-r.conns:
		return c, nil
	case <-r.slots:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		r.slots <- struct{}{}
		return nil, fmt.Errorf("workload: redis %s: %w", r.addr, err)
	}
	return &redisConn{nc: nc, w: resp.NewWriter(nc, 64<<10), r: bufio.NewReaderSize(nc, 64<<10)}, nil
}

// done returns c to the pool, or closes it after an error that may have
// left the stream out of step.
func (r *Redis) done(c *redisConn, err error) {
	if err != nil && !errors.Is(err, ErrRedis) {
		c.nc.Close()
		r.slots <- struct{}{}
		return
	}
	r.conns <- c
}

// do sends one command and reads its reply; the reply's bulk data lands in
// dst when it fits.
func (r *Redis) do(ctx context.Context, dst []byte, args ...[]byte) (reply, error) {
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		// The context's timer may not have fired yet; a socket deadline
		// in the past would fail the request (and the connection) anyway.
		return reply{}, fmt.Errorf("workload: redis: %w", context.DeadlineExceeded)
	}
	c, err := r.conn(ctx)
	if err != nil {
		return reply{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
	} else {
		c.nc.SetDeadline(time.Time{})
	}
	rep, err := c.roundTrip(dst, args)
	r.done(c, err)
	return rep, err
}

func (c *redisConn) roundTrip(dst []byte, args [][]byte) (reply, error) {
	if len(args) == 3 && string(args[0]) == "SET" {
		c.w.WriteSet(args[1], args[2])
	} else {
		c.w.WriteCommand(args...)
	}
	if err := c.w.Flush(); err != nil {
		return reply{}, fmt.Errorf("workload: redis write: %w", err)
	}
	rep, err := readReply(c.r, dst, maxRedisBulk)
	if err != nil {
		return reply{}, fmt.Errorf("workload: redis read: %w", err)
	}
	if rep.kind == '+' || rep.kind == '-' {
		// Text points into the connection's buffer, which the next user
		// of the connection overwrites.
		rep.data = bytes.Clone(rep.data)
	}
	if rep.kind == '-' {
		return rep, fmt.Errorf("%w: %s", ErrRedis, rep.data)
	}
	return rep, nil
}

// Put is SET.
func (r *Redis) Put(ctx context.Context, key string, value []byte) error {
	rep, err := r.do(ctx, nil, []byte("SET"), []byte(key), value)
	if err == nil && (rep.kind != '+' || string(rep.data) != "OK") {
		err = fmt.Errorf("workload: redis SET %q: unexpected %q reply", key, rep.kind)
	}
	return err
}

// Get is GET; the value is read straight into dst when it fits.
func (r *Redis) Get(ctx context.Context, key string, dst []byte) ([]byte, error) {
	rep, err := r.do(ctx, dst[:0:cap(dst)], []byte("GET"), []byte(key))
	switch {
	case err != nil:
		return nil, err
	case rep.kind == '_':
		return nil, fmt.Errorf("%w: redis GET %q", ErrNotFound, key)
	case rep.kind != '$':
		return nil, fmt.Errorf("workload: redis GET %q: unexpected %q reply", key, rep.kind)
	}
	return rep.data, nil
}

// Exists is EXISTS.
func (r *Redis) Exists(ctx context.Context, key string) (bool, error) {
	rep, err := r.do(ctx, nil, []byte("EXISTS"), []byte(key))
	if err == nil && rep.kind != ':' {
		err = fmt.Errorf("workload: redis EXISTS %q: unexpected %q reply", key, rep.kind)
	}
	return rep.n > 0, err
}

// Delete is DEL.
func (r *Redis) Delete(ctx context.Context, key string) error {
	rep, err := r.do(ctx, nil, []byte("DEL"), []byte(key))
	if err == nil && rep.kind != ':' {
		err = fmt.Errorf("workload: redis DEL %q: unexpected %q reply", key, rep.kind)
	}
	return err
}

// Close closes the idle connections; call it when no request is running.
func (r *Redis) Close() error {
	for {
		select {
		case c := <-r.conns:
			c.nc.Close()
			r.slots <- struct{}{}
		default:
			return nil
		}
	}
}

// reply is one decoded RESP reply: kind is its prefix byte ('+', '-', ':',
// '$'), or '_' for a null. data is the text or the bulk value; n the
// integer.
type reply struct {
	kind byte
	data []byte
	n    int64
}

// readReply decodes one reply of the kinds GET, SET, EXISTS and DEL give:
//
//	+text\r\n  -text\r\n  :int\r\n  $len\r\n<len bytes>\r\n  $-1\r\n  _\r\n
//
// A bulk value goes into dst when it fits its capacity, else into a new
// slice; its length is checked against maxBulk before anything is
// allocated. Text replies (+ and -) point into br's buffer and are valid
// until the next read. Arrays and other kinds are refused.
func readReply(br *bufio.Reader, dst []byte, maxBulk int) (reply, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return reply{}, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return reply{}, fmt.Errorf("%w: malformed line", resp.ErrProtocol)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+', '-':
		return reply{kind: kind, data: body}, nil
	case '_':
		return reply{kind: '_'}, nil
	case ':':
		n, err := parseInt(body)
		return reply{kind: ':', n: n}, err
	case '$':
		n, err := parseInt(body)
		if err != nil {
			return reply{}, err
		}
		return readBulk(br, n, dst, maxBulk)
	}
	return reply{}, fmt.Errorf("%w: unsupported reply type %q", resp.ErrProtocol, kind)
}

func readBulk(br *bufio.Reader, n int64, dst []byte, maxBulk int) (reply, error) {
	if n == -1 {
		return reply{kind: '_'}, nil
	}
	if n < 0 || n > int64(maxBulk) {
		return reply{}, fmt.Errorf("%w: bulk length %d", resp.ErrProtocol, n)
	}
	v := dst[:0]
	if int64(cap(v)) < n {
		v = make([]byte, n)
	}
	v = v[:n]
	if _, err := io.ReadFull(br, v); err != nil {
		return reply{}, noEOF(err)
	}
	var crlf [2]byte
	if _, err := io.ReadFull(br, crlf[:]); err != nil {
		return reply{}, noEOF(err)
	}
	if crlf != [2]byte{'\r', '\n'} {
		return reply{}, fmt.Errorf("%w: bulk not followed by CRLF", resp.ErrProtocol)
	}
	return reply{kind: '$', data: v}, nil
}

// parseInt parses a RESP decimal with an optional minus sign; at most 18
// digits, so it cannot overflow.
func parseInt(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, fmt.Errorf("%w: bad integer", resp.ErrProtocol)
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: bad integer", resp.ErrProtocol)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
