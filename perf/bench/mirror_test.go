package bench

import (
	"bufio"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/perf/echo"
	"github.com/pocketstore/pocket/wire"
)

// mirrorConn is a net.Conn whose server costs nothing but answers each
// request frame written to it as a server would: reply(frame) is queued
// and read back in order. It expects whole frames per Write, as the
// drivers' buffered writers flush them. It lets a pipelined driver's own
// CPU be measured with request ids that match.
type mirrorConn struct {
	net.Conn                                // nil; only the methods used are below
	frame    func(b []byte) int             // length of the frame at the head of b
	reply    func(dst, frame []byte) []byte // dst with frame's reply appended
	out      []byte
	off      int
}

func (c *mirrorConn) Write(p []byte) (int, error) {
	for b := p; len(b) > 0; {
		n := c.frame(b)
		if n <= 0 || n > len(b) {
			return 0, fmt.Errorf("mirror: partial frame of %d bytes", len(b))
		}
		c.out = c.reply(c.out, b[:n])
		b = b[n:]
	}
	return len(p), nil
}

func (c *mirrorConn) Read(p []byte) (int, error) {
	n := copy(p, c.out[c.off:])
	if c.off += n; c.off == len(c.out) {
		c.out, c.off = c.out[:0], 0
	}
	return n, nil
}

func (c *mirrorConn) Close() error { return nil }

// pocketMirror answers every get with a value of size bytes, every put
// with an empty reply, each under its request's id.
func pocketMirror(size int) *mirrorConn {
	value := NewValue(size)
	lim := wire.DefaultLimits()
	return &mirrorConn{
		frame: func(b []byte) int {
			h, err := wire.ParseHeader(b, &lim)
			if err != nil {
				return -1
			}
			return int(h.FrameLen())
		},
		reply: func(dst, frame []byte) []byte {
			h, _ := wire.ParseHeader(frame, &lim)
			r := wire.Header{Op: h.Op.Reply(), ID: h.ID}
			if h.Op == wire.OpGet {
				r.PayloadLen = uint32(size)
				return append(wire.AppendHeader(dst, &r), value...)
			}
			return wire.AppendHeader(dst, &r)
		},
	}
}

// echoMirror answers each echo frame with a reply of the size it asks.
func echoMirror() *mirrorConn {
	value := NewValue(echo.MaxReply)
	return &mirrorConn{
		frame: func(b []byte) int {
			if len(b) < echo.HeaderSize {
				return -1
			}
			body, _ := echo.ParseHeader(b)
			return echo.HeaderSize + int(body)
		},
		reply: func(dst, frame []byte) []byte {
			_, reply := echo.ParseHeader(frame)
			body := int(reply) - echo.HeaderSize
			dst = echo.AppendHeader(dst, uint32(body), 0)
			return append(dst, value[:body]...)
		},
	}
}

// mirrorDrivers are the node's driver and the echo driver, each against
// its mirror, with 1 KiB values.
var mirrorDrivers = []struct {
	name string
	dial func() Conn
}{
	{"pocket", func() Conn {
		opts := client.ConnOptions{Job: []byte("bench"), Token: make([]byte, 32), Epoch: 1, BufferSize: bufSize}
		return newPocketConn(client.NewConn(pocketMirror(mirrorSize), opts), opts, new(atomic.Uint64), mirrorSize)
	}},
	{"echo", func() Conn {
		nc := echoMirror()
		return &echoConn{nc: nc, w: bufio.NewWriterSize(nc, bufSize), r: bufio.NewReaderSize(nc, bufSize), valueSize: mirrorSize}
	}},
}

const mirrorSize = 1024

// TestDriversAgainstMirror: each driver's pipelined gets and puts are
// answered and checked against its mirror, request by request, so the
// benchmark below measures working drivers.
func TestDriversAgainstMirror(t *testing.T) {
	key, value := []byte("b1024-00000001"), NewValue(mirrorSize)
	for _, d := range mirrorDrivers {
		c := d.dial()
		for range 3 {
			driverBatch(t, c, key, nil, 16)
			driverBatch(t, c, key, value, 16)
		}
	}
}

// BenchmarkDriverPipelined is the generator's own cost per request of a
// 16-deep pipeline of 1 KiB gets and puts, the node's driver beside the
// echo driver (bench-compare's share-of-echo rows carry both), against a
// mirror: the figures include the mirror's parsing of each request and
// building of its reply, which is more for the node's frames.
func BenchmarkDriverPipelined(b *testing.B) {
	const depth = 16
	key, value := []byte("b1024-00000001"), NewValue(mirrorSize)
	for _, d := range mirrorDrivers {
		for _, op := range []string{"get", "put"} {
			b.Run(d.name+"-"+op, func(b *testing.B) {
				c := d.dial()
				var val []byte // gets
				if op == "put" {
					val = value
				}
				b.ReportAllocs()
				for b.Loop() {
					driverBatch(b, c, key, val, depth)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*depth), "ns/request")
			})
		}
	}
}
