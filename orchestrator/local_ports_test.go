package orchestrator

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

// freeRange finds n consecutive ports on 127.0.0.1 that can all be bound
// now, and returns the first.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for base := 20000; base+n < 60000; base += 97 {
		ok := true
		for p := base; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if ok = err == nil; ok {
				ln.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Skip("no free port range")
	return 0
}

// TestLocalPortsTakesTheFreeOnes: with Ports, each node listens on the
// lowest port of the range no node holds and no other program binds, a
// port comes back when its node stops, and a start with none left fails
// with ErrNoPort. Before, nodes took ports the kernel picked, and a new
// user confined to a port range could not use pocket up.
func TestLocalPortsTakesTheFreeOnes(t *testing.T) {
	base := freeRange(t, 3)
	other, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base)) // another program's
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l := &Local{Binary: buildPocket(t), StopTimeout: 5 * time.Second, Ports: PortRange{First: base, Last: base + 2}}
	defer l.Close()
	ctx := context.Background()
	want := func(n Node, port int) {
		t.Helper()
		if n.Addr != "127.0.0.1:"+strconv.Itoa(port) {
			t.Fatalf("node at %s; want port %d", n.Addr, port)
		}
	}
	a, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	want(a, base+1)
	b, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	want(b, base+2)
	if _, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"}); !errors.Is(err, ErrNoPort) {
		t.Fatalf("a third node in a range of three ports, one another program's: %v; want ErrNoPort", err)
	}
	if err := l.Stop(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	c, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	want(c, base+1)
}

// TestLocalPortsTakenMeanwhile: a port another program binds between the
// look and the node's own bind is passed over: the node starts on the
// next one. Before, the start failed ("node did not start"), as when two
// pocket up with one --node-ports started at once (a hostile trial).
func TestLocalPortsTakenMeanwhile(t *testing.T) {
	base := freeRange(t, 2)
	l := &Local{Binary: buildPocket(t), StopTimeout: 5 * time.Second, Ports: PortRange{First: base, Last: base + 1}}
	defer l.Close()
	var thief net.Listener
	l.beforeRun = func(port int) {
		if thief == nil {
			var err error
			if thief, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
				t.Error(err)
			}
		}
	}
	n, err := l.Start(context.Background(), NodeSpec{DRAM: "16MiB"})
	if thief != nil {
		defer thief.Close()
	}
	if err != nil {
		t.Fatalf("a port taken between the look and the bind: %v; want the next port", err)
	}
	if n.Addr != "127.0.0.1:"+strconv.Itoa(base+1) {
		t.Fatalf("node at %s; want port %d", n.Addr, base+1)
	}
}
