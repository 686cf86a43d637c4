package dataplane

import (
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

// TestPingFloodHoldsNoSlotFromTokens: peers with no token fill the node's
// connection slots and keep them past the idle timeout with pings (which
// need no token). A client with a valid token must still be served.
func TestPingFloodHoldsNoSlotFromTokens(t *testing.T) {
	const slots = 40
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: fakeGuard{},
		Net: netio.Config{Loops: 2, MaxConns: slots, IdleTimeout: time.Second}})
	ping := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPing, ID: 1})
	holdSlots(t, n, slots, func(nc net.Conn, _ *client.Conn) { nc.Write(ping) })
	time.Sleep(2500 * time.Millisecond) // past the idle timeout, twice
	assertPutsServed(t, n, "j", slots, "tokenless connections pinged")
}

// TestPingFloodFromOneAddressHoldsNoSlotFromTokens: the same flood from
// the clients' own address, at the node's per-address limit: a client
// with a valid token from that address must still be served. Before
// netio's peerevict.go, 0 of 5 puts were (a hostile trial: 4,096
// tokenless connections from one address kept every other client of it,
// and the controller's drop orders, off the node).
func TestPingFloodFromOneAddressHoldsNoSlotFromTokens(t *testing.T) {
	const slots = 40
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: fakeGuard{},
		Net: netio.Config{Loops: 2, MaxConns: 1000, MaxConnsPerPeer: slots, IdleTimeout: time.Second}})
	ping := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPing, ID: 1})
	holdSlots(t, n, slots, func(nc net.Conn, _ *client.Conn) { nc.Write(ping) })
	time.Sleep(2500 * time.Millisecond)
	assertPutsServed(t, n, "j", slots, "tokenless connections from its address pinged")
}

// TestOneJobsConnectionsHoldNoSlotFromAnother: one job's connections,
// each proven with its valid token and kept busy with stats, fill the
// node's slots. Another job's client must still be served: a job may
// hold at most netio.Config.MaxProvenPerOwner (half the slots) proven.
// On the code before it, 0 of 5 puts of job j were served.
func TestOneJobsConnectionsHoldNoSlotFromAnother(t *testing.T) {
	const slots = 40
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: fakeGuard{},
		Net: netio.Config{Loops: 2, MaxConns: slots, IdleTimeout: time.Second}})
	holdSlots(t, n, slots, func(_ net.Conn, c *client.Conn) {
		c.Send(wire.OpStat, 0, &wire.Request{Job: []byte("h"), Token: []byte("ok-h"), Key: []byte("k")}, nil)
		c.Flush()
	})
	time.Sleep(1500 * time.Millisecond)
	assertPutsServed(t, n, "j", slots, "connections of job h sent stats")
	st := n.Stats().Net
	if st.OverOwner < slots/2 || st.UnprovenEvictions == 0 {
		t.Fatalf("%d connections of job h counted over its proven share (want at least %d), %d evicted (want some)",
			st.OverOwner, slots/2, st.UnprovenEvictions)
	}
	fams := scrapeNode(t, n)
	over, _ := fams.Value(metrics.NodeConnectionsOverJobShare)
	evicted, _ := fams.Value(metrics.NodeConnectionsEvicted)
	if over < slots/2 || evicted == 0 {
		t.Fatalf("metrics: %v over the job's share, %v evicted", over, evicted)
	}
}

// TestOneOwnersJobsHoldNoSlotFromAnother (hostile trial, 2026-12-06): the
// share of proven slots is the owner's (wire.JobEpoch.Owner: the tenant
// that registered the job), not the job's. A tenant's two jobs, each
// with half the slots proven and kept busy, filled the node, and another
// tenant's job had 10 of 10 gets refused at the limit. Fails on the code
// before (the share was keyed by job: 0 of 5 puts served).
func TestOneOwnersJobsHoldNoSlotFromAnother(t *testing.T) {
	const slots = 40
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: fakeGuard{},
		Net: netio.Config{Loops: 2, MaxConns: slots, IdleTimeout: time.Second}})
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "h1", Owner: "tenant mallory"}, wire.JobEpoch{Job: "h2", Owner: "tenant mallory"},
		wire.JobEpoch{Job: "j", Owner: "tenant alice"}))
	var i int
	holdSlots(t, n, slots, func(_ net.Conn, c *client.Conn) {
		job := []string{"h1", "h2"}[i%2]
		i++
		c.Send(wire.OpStat, 0, &wire.Request{Job: []byte(job), Token: []byte("ok-" + job), Key: []byte("k")}, nil)
		c.Flush()
	})
	time.Sleep(1500 * time.Millisecond)
	assertPutsServed(t, n, "j", slots, "connections of two jobs of one tenant sent stats")
}

// holdSlots opens slots connections to n, takes their replies, and calls
// send on each every 200 ms until the test ends.
func holdSlots(t *testing.T, n *Node, slots int, send func(net.Conn, *client.Conn)) {
	var flood []net.Conn
	var conns []*client.Conn
	for range slots {
		c, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() { // take the replies
			b := make([]byte, 512)
			for {
				if _, err := c.Read(b); err != nil {
					return
				}
			}
		}()
		flood = append(flood, c)
		conns = append(conns, client.NewConn(c, client.ConnOptions{}))
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		for {
			for i, c := range flood {
				send(c, conns[i])
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// assertPutsServed fails unless 5 puts of job, each on a new connection,
// are all served.
func assertPutsServed(t *testing.T, n *Node, job string, slots int, what string) {
	t.Helper()
	served := 0
	var last error
	for range 5 {
		nc, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(3 * time.Second))
		c := client.NewConn(nc, client.ConnOptions{Job: []byte(job), Token: []byte("ok-" + job)})
		c.SendPut([]byte("k"), []byte("v"), 0)
		c.Flush()
		r, err := c.Recv()
		switch {
		case err != nil:
			last = err
		case r.Code != 0:
			last = r.Err()
		default:
			served++
		}
		nc.Close()
		time.Sleep(100 * time.Millisecond)
	}
	st := n.Stats().Net
	t.Logf("net stats: open %d refused %d reserved %d idle closed %d evicted %d over owner %d",
		st.Open, st.Refused, st.Reserved, st.IdleClosed, st.UnprovenEvictions, st.OverOwner)
	if served != 5 {
		t.Fatalf("%d of 5 puts of job %s served while %d %s; last error: %v", served, job, slots, what, last)
	}
}

func connfloodDRAM(t *testing.T) *DRAM {
	d, err := NewDRAM(16<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
