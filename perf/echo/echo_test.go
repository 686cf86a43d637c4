package echo

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
)

func start(t *testing.T) string {
	t.Helper()
	s, err := Listen("127.0.0.1:0", netio.Config{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// readReply reads one reply and returns its body length, checking the
// body is zeros.
func readReply(t *testing.T, r *bufio.Reader) int {
	t.Helper()
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("reply header: %v", err)
	}
	body, zero := ParseHeader(hdr[:])
	if zero != 0 {
		t.Fatalf("reply header's second field is %d, want 0", zero)
	}
	buf := make([]byte, body)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("reply body of %d: %v", body, err)
	}
	for i, b := range buf {
		if b != 0 {
			t.Fatalf("reply byte %d is %d", i, b)
		}
	}
	return int(body)
}

// Pipelined frames of every shape, some bodies split across writes, get
// replies of the asked sizes in order: header-only, copied (small) and by
// reference over several zero chunks (3 MiB).
func TestRepliesHaveTheAskedSize(t *testing.T) {
	c := dial(t, start(t))
	type frame struct{ body, reply int }
	frames := []frame{{3, 8 + 1024}, {1024 + 16, 8}, {0, 8}, {200 << 10, 8 + 17<<10}, {5, 8 + 3<<20}}
	go func() {
		for _, f := range frames {
			msg := AppendHeader(nil, uint32(f.body), uint32(f.reply))
			msg = append(msg, make([]byte, f.body)...)
			// Split every frame in two writes, mid-header or mid-body.
			half := len(msg) / 2
			c.Write(msg[:half])
			c.Write(msg[half:])
		}
	}()
	r := bufio.NewReader(c)
	for i, f := range frames {
		if got := readReply(t, r); got != f.reply-HeaderSize {
			t.Fatalf("frame %d: reply body %d, want %d", i, got, f.reply-HeaderSize)
		}
	}
}

// A frame out of bounds closes the connection without a reply.
func TestBadFrameClosesTheConnection(t *testing.T) {
	addr := start(t)
	for _, f := range [][2]uint32{{0, 7}, {MaxBody + 1, 8}, {0, MaxReply + 1}} {
		c := dial(t, addr)
		c.Write(AppendHeader(nil, f[0], f[1]))
		n, err := c.Read(make([]byte, 16))
		if n != 0 || err == nil {
			t.Fatalf("frame body %d reply %d: read %d bytes, %v; want the connection closed", f[0], f[1], n, err)
		}
	}
}
