package bench

import (
	"context"
	"fmt"
	"net"

	"github.com/pocketstore/pocket/perf/resp"
)

// bufSize is each driver's buffer per direction: room for a 16-deep pipeline
// of 1 KiB requests in one write.
const bufSize = 64 << 10

// RESPDialer returns a Dialer for a Redis server at addr (host:port). Gets
// are checked to return valueSize bytes.
func RESPDialer(addr string, valueSize int) Dialer {
	return func(ctx context.Context) (Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("bench: dial redis %s: %w", addr, err)
		}
		return newRESPConn(nc, valueSize), nil
	}
}

// respConn drives Redis with GET and SET.
type respConn struct {
	nc        net.Conn
	w         *resp.Writer
	r         *resp.Reader
	sent      opQueue[Op]
	valueSize int
}

func newRESPConn(nc net.Conn, valueSize int) *respConn {
	return &respConn{
		nc: nc, w: resp.NewWriter(nc, bufSize),
		r:         resp.NewReader(nc, bufSize, maxBulk(valueSize)),
		valueSize: valueSize,
	}
}

// maxBulk is the largest value the driver reads: room for values larger
// than expected, so a wrong size is read whole and reported as a wrong
// response instead of breaking the stream.
func maxBulk(valueSize int) int {
	return min(max(2*valueSize, 1<<20), resp.DefaultMaxBulk)
}

func (c *respConn) SendGet(key []byte) error {
	c.sent.push(Get)
	return c.w.WriteGet(key)
}

func (c *respConn) SendPut(key, value []byte) error {
	c.sent.push(Put)
	return c.w.WriteSet(key, value)
}

// SendDelete implements Deleter (DEL).
func (c *respConn) SendDelete(key []byte) error {
	c.sent.push(Delete)
	return c.w.WriteCommand([]byte("DEL"), key)
}

func (c *respConn) Flush() error { return c.w.Flush() }

func (c *respConn) Recv() error {
	op, ok := c.sent.pop()
	if !ok {
		return fmt.Errorf("bench: redis: Recv with no request outstanding")
	}
	rep, err := c.r.Next()
	if err != nil {
		return fmt.Errorf("bench: redis: %w", err)
	}
	return checkRESP(op, rep, c.valueSize)
}

// checkRESP validates a reply: SET answers +OK, GET a bulk string of the
// expected size.
func checkRESP(op Op, rep resp.Reply, size int) error {
	switch {
	case rep.Kind == resp.Error:
		return fmt.Errorf("%w: redis %v: %s", ErrResponse, op, rep.Data)
	case op == Delete && rep.Kind != resp.Integer:
		return fmt.Errorf("%w: redis DEL answered %v %q", ErrResponse, rep.Kind, rep.Data)
	case op == Delete:
		return nil // 1 deleted, 0 not there
	case op == Put && (rep.Kind != resp.SimpleString || string(rep.Data) != "OK"):
		return fmt.Errorf("%w: redis SET answered %v %q", ErrResponse, rep.Kind, rep.Data)
	case op == Get && rep.Kind == resp.Null:
		return fmt.Errorf("%w: redis GET: key missing", ErrResponse)
	case op == Get && (rep.Kind != resp.Bulk || len(rep.Data) != size):
		return fmt.Errorf("%w: redis GET answered %v of %d bytes, want %d", ErrResponse, rep.Kind, len(rep.Data), size)
	}
	return nil
}

func (c *respConn) Close() error { return c.nc.Close() }
