package bench

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/perf/resp"
	"github.com/pocketstore/pocket/wire"
)

// replayConn is a net.Conn that swallows writes and answers every read
// from a fixed reply stream, over and over: a server with no cost, so the
// drivers' own allocations and CPU can be measured.
type replayConn struct {
	net.Conn // nil; only the methods below are used
	replies  []byte
	off      int
}

func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *replayConn) Read(p []byte) (int, error) {
	n := copy(p, c.replies[c.off:])
	c.off = (c.off + n) % len(c.replies)
	return n, nil
}
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

// respReplay returns a RESP driver whose server answers every GET with a
// value of size bytes.
func respReplay(size int) Conn {
	reply := resp.AppendReply(nil, resp.Reply{Kind: resp.Bulk, Data: NewValue(size)})
	return newRESPConn(&replayConn{replies: reply}, size)
}

// wireReplay returns a node driver whose server answers every get with a
// value of size bytes, always as the reply to request id 1.
func wireReplay(size int) *pocketConn {
	h := wire.Header{Op: wire.OpGet.Reply(), ID: 1, PayloadLen: uint32(size)}
	stream := append(wire.AppendHeader(nil, &h), NewValue(size)...)
	opts := client.ConnOptions{Job: []byte("bench"), BufferSize: bufSize}
	return newPocketConn(client.NewConn(&replayConn{replies: stream}, opts), opts, new(atomic.Uint64), size)
}

// driverBatch sends depth gets in one flush (puts of value when it is not
// nil) and reads the replies.
func driverBatch(t testing.TB, c Conn, key, value []byte, depth int) {
	for range depth {
		var err error
		if value == nil {
			err = c.SendGet(key)
		} else {
			err = c.SendPut(key, value)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for range depth {
		if err := c.Recv(); err != nil {
			t.Fatal(err)
		}
	}
}

// nodeGet is one get through the node driver against wireReplay, whose
// reply always names id 1: the outstanding id is set to match.
func nodeGet(t testing.TB, c *pocketConn, key []byte) {
	if err := c.SendGet(key); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	c.sent[0].id = 1
	if err := c.Recv(); err != nil {
		t.Fatal(err)
	}
}

func TestRESPDriverDoesNotAllocate(t *testing.T) {
	c := respReplay(1024)
	key := []byte("b1024-00000001")
	driverBatch(t, c, key, nil, 16)
	if a := testing.AllocsPerRun(100, func() { driverBatch(t, c, key, nil, 16) }); a != 0 {
		t.Fatalf("RESP driver allocates %.1f times per 16 gets", a)
	}
}

func BenchmarkRESPDriverGet1KiB(b *testing.B) {
	c := respReplay(1024)
	key := []byte("b1024-00000001")
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		driverBatch(b, c, key, nil, 1)
	}
}

func TestNodeDriverDoesNotAllocate(t *testing.T) {
	c := wireReplay(1024)
	key := []byte("b1024-00000001")
	nodeGet(t, c, key)
	if a := testing.AllocsPerRun(100, func() { nodeGet(t, c, key) }); a != 0 {
		t.Fatalf("node driver allocates %.1f times per get", a)
	}
}

func BenchmarkNodeDriverGet1KiB(b *testing.B) {
	c := wireReplay(1024)
	key := []byte("b1024-00000001")
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		nodeGet(b, c, key)
	}
}
