package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// fullNode is a node guarded by jtSecret, with the default reserve, whose
// one connection slot (MaxConns 1) is held by the connection it returns,
// which has stored job j's key "k0".
func fullNode(t *testing.T) (*Node, *client.Conn) {
	t.Helper()
	d, err := NewDRAM(16<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: NewTokenGuard(jtSecret), Logger: quiet,
		Net: netio.Config{Loops: 2, MaxConns: 1}}, d)
	hold := dial(t, n, "j")
	r := roundTrip(t, hold, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k0"), Token: jobTok("j", 1)}, []byte("v0"))
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return n, hold
}

// dialFrom connects to n from the loopback address ip (another peer than
// 127.0.0.1), or returns the error.
func dialFrom(n *Node, ip string) (*client.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", n.Addr().String())
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return client.NewConn(nc, client.ConnOptions{}), nil
}

// askOnce sends one request on a new connection from ip and returns the
// reply's error, or errNoReply when the node closed the connection
// without one (refused at accept, or evicted from the reserve by a newer
// connection, which may reset it before the dial returns).
func askOnce(n *Node, ip string, op wire.Op, req *wire.Request, payload []byte) (client.Response, error) {
	c, err := dialFrom(n, ip)
	if err != nil {
		return client.Response{}, errNoReply
	}
	defer c.Close()
	if _, err := c.Send(op, 0, req, payload); err != nil {
		return client.Response{}, errNoReply
	}
	if err := c.Flush(); err != nil {
		return client.Response{}, errNoReply
	}
	r, err := c.Recv()
	if err != nil {
		return client.Response{}, errNoReply
	}
	// Copy out what the caller reads: r points into c's buffers.
	r.Meta = append([]byte(nil), r.Meta...)
	r.Payload = append([]byte(nil), r.Payload...)
	return r, r.Err()
}

var errNoReply = errors.New("connection closed without a reply")

// TestReserveServesOnlyTheControllersQuestions: with its connection slots
// all taken, a node still answers the controller's incarnation question
// (and drop orders, and pings) on its reserve, every time, while a flood
// of ordinary clients from another address sends data requests and idle
// clients from a third squat: every data request that reaches the
// reserve is refused with CodeLimit (nothing stored, no value read), and
// a reserve connection answers one request only. Without the reserve the
// incarnation question is refused at accept (the controller could not
// confirm a full node's restart).
func TestReserveServesOnlyTheControllersQuestions(t *testing.T) {
	n, hold := fullNode(t)
	addr := n.Addr().String()
	ctx := context.Background()
	tok := jobTok("j", 1)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var limited, noReply, served atomic.Int64
	var servedErr atomic.Value
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				op, payload := wire.OpGet, []byte(nil)
				key := []byte("k0")
				if i%2 == 0 {
					op, payload, key = wire.OpPut, []byte("flood"), []byte(fmt.Sprintf("flood-%d-%d", g, i))
				}
				_, err := askOnce(n, "127.0.0.2", op, &wire.Request{Job: []byte("j"), Key: key, Token: tok}, payload)
				switch {
				case errors.Is(err, wire.ErrLimit):
					limited.Add(1)
				case errors.Is(err, errNoReply):
					noReply.Add(1)
				default:
					served.Add(1)
					servedErr.Store(fmt.Sprintf("%v %s: %v", op, key, err))
				}
			}
		}(g)
	}
	// Idle clients from a third address squat on the reserve.
	for i := 0; i < 8; i++ {
		if c, err := dialFrom(n, "127.0.0.3"); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}

	nonce := []byte("controller-nonce")
	for i := 0; i < 20; i++ {
		cl := client.New(client.Options{ConnsPerNode: 1})
		inc, proof, err := cl.Incarnation(ctx, addr, nonce)
		cl.Close()
		if err != nil || inc != n.Incarnation() || !token.VerifyIncarnationProof(jtSecret, nonce, inc, proof) {
			t.Fatalf("question %d during the flood: incarnation %d, %v; want the node's %d, proved", i, inc, err, n.Incarnation())
		}
	}
	if r, err := askOnce(n, "127.0.0.1", wire.OpPing, &wire.Request{}, nil); err != nil || r.Op != wire.OpPing.Reply() {
		t.Fatalf("ping on the reserve: %v", err)
	}
	close(stop)
	wg.Wait()
	if served.Load() != 0 {
		t.Fatalf("%d data requests on the reserve were served, e.g. %v", served.Load(), servedErr.Load())
	}
	if limited.Load() == 0 {
		t.Fatalf("no data request reached the reserve to be refused (%d closed without a reply)", noReply.Load())
	}
	t.Logf("flood: %d data requests refused with CodeLimit, %d connections closed at accept; 20 questions answered",
		limited.Load(), noReply.Load())
	if u := n.cfg.DRAM.Usage(); u.Values != 1 {
		t.Fatalf("the node holds %d values after the flood, want 1 (k0)", u.Values)
	}

	// One request per reserve connection: a second, pipelined, is not answered.
	c, err := dialFrom(n, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 2; i++ {
		if _, err := c.Send(wire.OpIncarnation, 0, &wire.Request{Key: nonce}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Recv(); err != nil || r.Err() != nil {
		t.Fatalf("first request on a reserve connection: %v %v", err, r.Err())
	}
	if r, err := c.Recv(); err == nil {
		t.Fatalf("second request on a reserve connection answered: %+v", r)
	}

	// The controller's drop order is served there too; a forged one is not.
	if _, err := askOnce(n, "127.0.0.1", wire.OpDropJob, &wire.Request{Job: []byte("j"), Token: tok}, nil); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("drop order with a job's token on the reserve: %v, want bad token", err)
	}
	cl := client.New(client.Options{ConnsPerNode: 1})
	defer cl.Close()
	if d, err := cl.DropJobAt(ctx, addr, "j", token.OrderKey(jtSecret, []byte("j")), n.Incarnation()); err != nil || d.Values != 1 {
		t.Fatalf("drop order on the reserve: %+v, %v; want 1 value", d, err)
	}
	// The connection within the limit still serves.
	r := roundTrip(t, hold, wire.OpPing, 0, &wire.Request{}, nil)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestNoReserveRefusesTheQuestion: the class the reserve closes: a node
// configured without one (ReserveConns negative) and its slots taken
// refuses the incarnation question at accept.
func TestNoReserveRefusesTheQuestion(t *testing.T) {
	d, err := NewDRAM(1<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := NewNode(NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Logger: quiet, Net: netio.Config{Loops: 1, MaxConns: 1, ReserveConns: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	hold := dial(t, n, "j")
	if r := roundTrip(t, hold, wire.OpPing, 0, &wire.Request{}, nil); r.Err() != nil {
		t.Fatal(r.Err())
	}
	cl := client.New(client.Options{ConnsPerNode: 1})
	defer cl.Close()
	if _, _, err := cl.Incarnation(context.Background(), n.Addr().String(), []byte("controller-nonce")); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("incarnation question to a full node without a reserve: %v, want unavailable (refused at accept)", err)
	}
}
