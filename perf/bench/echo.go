package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/pocketstore/pocket/perf/echo"
)

// EchoDialer returns a Dialer for the echo server of package perf/echo at
// addr: the small-request limit. A GET sends the key and asks for a reply
// carrying valueSize bytes; a PUT sends key and value and asks for a
// header-only reply, so each direction carries the bytes a node's GET or
// PUT would. Replies are checked for their size.
func EchoDialer(addr string, valueSize int) Dialer {
	return func(ctx context.Context) (Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("bench: dial echo %s: %w", addr, err)
		}
		return &echoConn{
			nc: nc, w: bufio.NewWriterSize(nc, bufSize), r: bufio.NewReaderSize(nc, bufSize),
			valueSize: valueSize,
		}, nil
	}
}

// echoConn drives an echo server.
type echoConn struct {
	nc        net.Conn
	w         *bufio.Writer
	r         *bufio.Reader
	sent      opQueue[Op]
	valueSize int
	hdr       [echo.HeaderSize]byte
	val       []byte // the last reply's body, reused
}

func (c *echoConn) send(op Op, body, reply int, parts ...[]byte) error {
	if body > echo.MaxBody || reply > echo.MaxReply {
		return fmt.Errorf("bench: echo: frame of %d bytes asking %d: over the echo limits", body, reply)
	}
	c.sent.push(op)
	c.w.Write(echo.AppendHeader(c.hdr[:0], uint32(body), uint32(reply)))
	var err error
	for _, p := range parts {
		_, err = c.w.Write(p) // errors stick in the bufio.Writer
	}
	return err
}

func (c *echoConn) SendGet(key []byte) error {
	return c.send(Get, len(key), echo.HeaderSize+c.valueSize, key)
}

func (c *echoConn) SendPut(key, value []byte) error {
	return c.send(Put, len(key)+len(value), echo.HeaderSize, key, value)
}

func (c *echoConn) Flush() error { return c.w.Flush() }

func (c *echoConn) Recv() error {
	op, ok := c.sent.pop()
	if !ok {
		return errors.New("bench: echo: Recv with no request outstanding")
	}
	if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
		return fmt.Errorf("bench: echo: %w", err)
	}
	body, _ := echo.ParseHeader(c.hdr[:])
	want := 0
	if op == Get {
		want = c.valueSize
	}
	if int64(body) != int64(want) {
		return fmt.Errorf("%w: echo reply of %d bytes to a %v, want %d", ErrFrameSize, body, op, want)
	}
	if err := readValue(c.r, &c.val, int(body)); err != nil {
		return fmt.Errorf("bench: echo: %w", noEOF(err))
	}
	return nil
}

// ErrFrameSize marks an echo reply of the wrong size: the stream cannot be
// trusted to be in step after it.
var ErrFrameSize = errors.New("bench: echo: reply size")

func (c *echoConn) Close() error { return c.nc.Close() }
