package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// The memcached driver speaks memcached's meta protocol (memcached 1.6 and
// later), the compact text commands built for pipelining:
//
//	get:  mg <key> v\r\n                 ->  VA <len>\r\n<len bytes>\r\n  or  EN\r\n (miss)
//	put:  ms <key> <len>\r\n<bytes>\r\n  ->  HD\r\n (stored)  or  NS\r\n (not stored)
//	del:  md <key>\r\n                  ->  HD\r\n (deleted)  or  NF\r\n (not there)
//
// Failures answer one line: ERROR, CLIENT_ERROR <text> or SERVER_ERROR
// <text>. Replies come in request order. Keys are at most 250 bytes with no
// spaces or control characters (the generator's keys are "b<size>-<n>").

// ErrMemcache marks a malformed memcached reply: the stream is out of step.
var ErrMemcache = errors.New("bench: memcache: protocol error")

// maxMemcacheKey is memcached's key length limit.
const maxMemcacheKey = 250

// MemcacheDialer returns a Dialer for a memcached server at addr
// (host:port). Gets are checked to return valueSize bytes.
func MemcacheDialer(addr string, valueSize int) Dialer {
	return func(ctx context.Context) (Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("bench: dial memcache %s: %w", addr, err)
		}
		return newMemcacheConn(nc, valueSize), nil
	}
}

// memcacheConn drives memcached with mg and ms.
type memcacheConn struct {
	nc        net.Conn
	w         *bufio.Writer
	r         *bufio.Reader
	sent      opQueue[Op]
	valueSize int
	maxValue  int      // larger VA lengths are refused before reading
	num       [24]byte // scratch for formatting lengths
	val       []byte   // the last value read, reused
}

func newMemcacheConn(nc net.Conn, valueSize int) *memcacheConn {
	return &memcacheConn{
		nc: nc, w: bufio.NewWriterSize(nc, bufSize), r: bufio.NewReaderSize(nc, bufSize),
		valueSize: valueSize, maxValue: maxBulk(valueSize),
	}
}

func checkMemcacheKey(key []byte) error {
	if len(key) == 0 || len(key) > maxMemcacheKey || bytes.ContainsAny(key, " \r\n\t") {
		return fmt.Errorf("bench: memcache: key %q: want 1-%d bytes without spaces", key, maxMemcacheKey)
	}
	return nil
}

func (c *memcacheConn) SendGet(key []byte) error {
	if err := checkMemcacheKey(key); err != nil {
		return err
	}
	c.sent.push(Get)
	c.w.WriteString("mg ") // errors stick in the bufio.Writer; the last call reports them
	c.w.Write(key)
	_, err := c.w.WriteString(" v\r\n")
	return err
}

func (c *memcacheConn) SendPut(key, value []byte) error {
	if err := checkMemcacheKey(key); err != nil {
		return err
	}
	c.sent.push(Put)
	c.w.WriteString("ms ")
	c.w.Write(key)
	c.w.WriteByte(' ')
	c.w.Write(strconv.AppendInt(c.num[:0], int64(len(value)), 10))
	c.w.WriteString("\r\n")
	c.w.Write(value) // a large value bypasses the buffer
	_, err := c.w.WriteString("\r\n")
	return err
}

// SendDelete implements Deleter (md).
func (c *memcacheConn) SendDelete(key []byte) error {
	if err := checkMemcacheKey(key); err != nil {
		return err
	}
	c.sent.push(Delete)
	c.w.WriteString("md ")
	c.w.Write(key)
	_, err := c.w.WriteString("\r\n")
	return err
}

func (c *memcacheConn) Flush() error { return c.w.Flush() }

func (c *memcacheConn) Recv() error {
	op, ok := c.sent.pop()
	if !ok {
		return errors.New("bench: memcache: Recv with no request outstanding")
	}
	line, err := c.line()
	if err != nil {
		return err
	}
	switch op {
	case Put:
		return checkStored(line)
	case Delete:
		return checkDeleted(line)
	}
	return c.readValue(line)
}

// line returns the next reply line without its CRLF, valid until the next
// read.
func (c *memcacheConn) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: reply line longer than %d bytes", ErrMemcache, c.r.Size())
	case err == io.EOF && len(line) > 0:
		return nil, fmt.Errorf("bench: memcache: %w", io.ErrUnexpectedEOF)
	case err != nil:
		return nil, fmt.Errorf("bench: memcache: %w", err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line %q does not end in CRLF", ErrMemcache, line)
	}
	return line[:len(line)-2], nil
}

// checkStored judges an ms reply.
func checkStored(line []byte) error {
	switch {
	case string(line) == "HD":
		return nil
	case string(line) == "NS" || isFailure(line):
		return fmt.Errorf("%w: memcache ms answered %q", ErrResponse, line)
	}
	return fmt.Errorf("%w: unexpected ms reply %q", ErrMemcache, line)
}

// checkDeleted judges an md reply: deleted, or not there.
func checkDeleted(line []byte) error {
	switch {
	case string(line) == "HD" || string(line) == "NF":
		return nil
	case isFailure(line):
		return fmt.Errorf("%w: memcache md answered %q", ErrResponse, line)
	}
	return fmt.Errorf("%w: unexpected md reply %q", ErrMemcache, line)
}

// isFailure reports a failure line: the request was refused whole and the
// stream is still in step.
func isFailure(line []byte) bool {
	return string(line) == "ERROR" || bytes.HasPrefix(line, []byte("CLIENT_ERROR ")) ||
		bytes.HasPrefix(line, []byte("SERVER_ERROR "))
}

// readValue judges an mg reply, reading past its value.
func (c *memcacheConn) readValue(line []byte) error {
	switch {
	case string(line) == "EN":
		return fmt.Errorf("%w: memcache mg: key missing", ErrResponse)
	case isFailure(line):
		return fmt.Errorf("%w: memcache mg answered %q", ErrResponse, line)
	case !bytes.HasPrefix(line, []byte("VA ")):
		return fmt.Errorf("%w: unexpected mg reply %q", ErrMemcache, line)
	}
	size, _, _ := bytes.Cut(line[3:], []byte(" ")) // flags may follow
	n, err := strconv.Atoi(string(size))           // no allocation: the conversion does not escape
	if err != nil || n < 0 || n > c.maxValue {
		return fmt.Errorf("%w: value length %q (limit %d)", ErrMemcache, size, c.maxValue)
	}
	if err := readValue(c.r, &c.val, n); err != nil {
		return fmt.Errorf("bench: memcache: value: %w", noEOF(err))
	}
	crlf, err := c.r.Peek(2)
	if err != nil {
		return fmt.Errorf("bench: memcache: value: %w", noEOF(err))
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return fmt.Errorf("%w: value not followed by CRLF", ErrMemcache)
	}
	c.r.Discard(2)
	if n != c.valueSize {
		return fmt.Errorf("%w: memcache mg returned %d bytes, want %d", ErrResponse, n, c.valueSize)
	}
	return nil
}

func (c *memcacheConn) Close() error { return c.nc.Close() }

// noEOF turns io.EOF inside a reply into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
