package controller

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// busyFlood keeps workers connections per source address busy (an
// OpChallenge every 50 ms, so none is ever idle for evictMinIdle) until
// stop is closed, redialling when one is refused or closed. It returns the
// number of connections the controller refused or closed.
func busyFlood(addr string, from []string, workers int, stop <-chan struct{}) (refused *atomic.Int64, wait func()) {
	refused = &atomic.Int64{}
	var wg sync.WaitGroup
	for _, ip := range from {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: time.Second}
				for {
					select {
					case <-stop:
						return
					default:
					}
					conn, err := d.Dial("tcp", addr)
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					busyConn(conn, stop)
					conn.Close()
					refused.Add(1)
				}
			}()
		}
	}
	return refused, wg.Wait
}

// busyConn sends OpChallenge every 50 ms until a reply fails or stop.
func busyConn(conn net.Conn, stop <-chan struct{}) {
	r := bufio.NewReader(conn)
	lim := wire.ControlLimits()
	frame := wire.AppendControlFrame(nil, wire.OpChallenge, 1, wire.CodeOK, (&wire.Challenge{}).Encode(flatbuffers.NewBuilder(0)))
	for {
		select {
		case <-stop:
			return
		default:
		}
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write(frame); err != nil {
			return
		}
		h, meta, err := wire.ReadControlFrame(r, &lim, nil)
		if err != nil || wire.ReplyError(&h, meta) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heartbeat sends a node's heartbeats every 100 ms over its own
// connection until stop, dialling a new one (as a restarted node does)
// when redial is closed.
func heartbeat(addr, node string, stop, redial <-chan struct{}, failures *atomic.Int64) {
	mc := metaclient.New(addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	defer func() { mc.Close() }()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-redial:
			redial = nil
			mc.Close()
			mc = metaclient.New(addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := mc.Heartbeat(ctx, wire.Heartbeat{Addr: node}); err != nil {
			failures.Add(1)
		}
		cancel()
	}
}

// TestBusyFloodKeepsNodes (hostile test, HIGH): a flood of busy
// connections from several addresses over MaxConns neither keeps the
// nodes' heartbeats out (their connections, new ones included, are
// outside MaxConns) nor gets a node marked dead, lost from the map, or
// its data dropped; the flood's own connections over the limit are
// refused. The old controller refused the nodes' redials ("none idle"),
// marked both dead after DeadAfter and lost them after the grace.
func TestBusyFloodKeepsNodes(t *testing.T) {
	const maxConns = 8
	c := newTest(t, Config{MaxConns: maxConns, MaxConnsPerPeer: -1, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 1500 * time.Millisecond, DeadNodeGrace: time.Second, ForgetAfter: time.Hour})
	nodes := []string{"127.0.0.1:7001", "127.0.0.1:7002"}
	for _, n := range nodes {
		mustRegister(t, c, dramNode(n, 1<<30, 8000))
	}
	m, err := c.RegisterJob("flooded", wire.JobHints{PeakMbps: 16000})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("job: %+v %v", m, err)
	}
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop, redial := make(chan struct{}), make(chan struct{})
	var failures atomic.Int64
	var hb sync.WaitGroup
	for _, n := range nodes {
		hb.Add(1)
		go func() { defer hb.Done(); heartbeat(a.String(), n, stop, redial, &failures) }()
	}
	refused, floodDone := busyFlood(a.String(), []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}, 8, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		floodDone()
		hb.Wait()
	}()
	time.Sleep(300 * time.Millisecond) // the flood fills MaxConns
	close(redial)                      // the nodes dial again through the flood
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if err := nodesKept(c, m, nodes); err != nil {
			t.Fatalf("during the flood: %v (heartbeat failures %d)", err, failures.Load())
		}
		c.srv.mu.Lock()
		plain := c.srv.plain
		c.srv.mu.Unlock()
		if plain > maxConns {
			t.Fatalf("%d connections counted by MaxConns %d", plain, maxConns)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	floodDone()
	hb.Wait()
	if err := nodesKept(c, m, nodes); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
	if refused.Load() == 0 {
		t.Fatal("no flood connection was refused over MaxConns")
	}
}

// nodesKept checks that every node is active, in the job's map, with no
// lost node and no drop order pending.
func nodesKept(c *Controller, m *wire.PlacementMap, nodes []string) error {
	c.mu.Lock()
	for _, n := range nodes {
		if st := c.nodes[n].state; st != wire.NodeActive {
			c.mu.Unlock()
			return fmt.Errorf("node %s is %v", n, st)
		}
	}
	drops := len(c.lostDrops)
	c.mu.Unlock()
	if drops != 0 {
		return fmt.Errorf("%d drop orders", drops)
	}
	got, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		return err
	}
	if len(got.Lost) != 0 || len(got.Nodes) != len(nodes) {
		return fmt.Errorf("map %+v", got)
	}
	return nil
}

// TestRefusalsPostponeLoss: a dead node whose silence began before the
// controller's latest refusal is not lost until the grace has passed since
// that refusal too (its heartbeats may have been refused); then it is.
func TestRefusalsPostponeLoss(t *testing.T) {
	c := deadTest(t, time.Minute)
	for i := 1; i <= 2; i++ {
		mustRegister(t, c, dramNode(fmt.Sprintf("127.0.0.1:700%d", i), 1<<30, 8000))
	}
	m, err := c.RegisterJob("j", wire.JobHints{PeakMbps: 16000})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	dead := m.Nodes[0].Addr
	if err := c.SetNodeState(dead, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.srv.noteRefusal(now.Add(110 * time.Second)) // refusing until 10 s before the sweep
	c.sweep(now.Add(2 * time.Minute))
	if got, _ := c.GetMap(m.Job, m.Token); len(got.Lost) != 0 || len(got.Nodes) != 2 {
		t.Fatalf("lost while the controller was refusing: %+v", got)
	}
	c.sweep(now.Add(3 * time.Minute)) // a grace past the last refusal
	if got, _ := c.GetMap(m.Job, m.Token); len(got.Lost) != 1 || got.Lost[0].Addr != dead {
		t.Fatalf("a grace after the refusals: %+v", got)
	}
}

// TestProbation: at MaxConns with none idle, a new connection is served
// only as a node: a status request gets the MaxConns refusal and the close,
// while a node's challenge and heartbeat succeed and take it out of
// MaxConns.
func TestProbation(t *testing.T) {
	c := newTest(t, Config{MaxConns: 1, MaxConnsPerPeer: -1})
	node := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(node, 1<<30, 8000))
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := flatbuffers.NewBuilder(0)
	lim := wire.ControlLimits()
	call := func(conn net.Conn, r *bufio.Reader, op wire.Op, m wire.ControlMessage) ([]byte, error) {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(wire.AppendControlFrame(nil, op, 1, wire.CodeOK, m.Encode(b))); err != nil {
			return nil, err
		}
		h, meta, err := wire.ReadControlFrame(r, &lim, nil)
		if err != nil {
			return nil, err
		}
		return meta, wire.ReplyError(&h, meta)
	}
	dial := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn, bufio.NewReader(conn)
	}
	busy, br := dial() // the one connection MaxConns counts, just used
	if _, err := call(busy, br, wire.OpChallenge, &wire.Challenge{}); err != nil {
		t.Fatal(err)
	}
	other, or := dial()
	if _, err := call(other, or, wire.OpStatus, &wire.JobRef{}); !errors.Is(err, wire.ErrLimit) || !strings.Contains(err.Error(), "only nodes are served (MaxConns 1)") {
		t.Fatalf("status on probation: %v", err)
	}
	if _, err := or.ReadByte(); err == nil {
		t.Fatal("a refused connection on probation was left open")
	}
	nc, nr := dial()
	meta, err := call(nc, nr, wire.OpChallenge, &wire.Challenge{})
	var ch wire.Challenge
	if err != nil || ch.Decode(meta) != nil {
		t.Fatalf("challenge on probation: %v", err)
	}
	if _, err := call(nc, nr, wire.OpHeartbeat, &wire.Heartbeat{Addr: node, Proof: token.NodeProof(testSecret, ch.Nonce, node)}); err != nil {
		t.Fatalf("node heartbeat on probation: %v", err)
	}
	if _, err := call(nc, nr, wire.OpStatus, &wire.JobRef{}); err != nil {
		t.Fatalf("a proved node's connection: %v", err)
	}
	c.srv.mu.Lock()
	plain, prob := c.srv.plain, c.srv.onProb
	c.srv.mu.Unlock()
	if plain != 1 || prob != 0 {
		t.Fatalf("counted %d, on probation %d; want 1 and 0", plain, prob)
	}
}
