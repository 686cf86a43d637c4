package dataplane

import (
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestTwoOwnersHoldNoNodeFromAThird: two owners' jobs (one client
// registering from two addresses, or two tenants acting together), each
// owner at its bound of half the slots with busy proven connections,
// held every slot of a node, and a third owner's puts were refused at
// the limit (a hostile re-check, 2026-12-06: 5,000 connections per owner,
// 10 of 10 gets refused). A newcomer now takes the slot of an owner over
// its fair share (netio's fairshare.go). Fails on the code before: 0 of
// 5 puts served.
func TestTwoOwnersHoldNoNodeFromAThird(t *testing.T) {
	const slots = 40
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: fakeGuard{},
		Net: netio.Config{Loops: 2, MaxConns: slots, IdleTimeout: time.Second}})
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "h1", Owner: "peer 10.0.0.1"}, wire.JobEpoch{Job: "h2", Owner: "peer 10.0.0.2"},
		wire.JobEpoch{Job: "j", Owner: "tenant alice"}))
	var i int
	holdSlots(t, n, slots, func(_ net.Conn, c *client.Conn) {
		job := []string{"h1", "h2"}[i%2]
		i++
		c.Send(wire.OpStat, 0, &wire.Request{Job: []byte(job), Token: []byte("ok-" + job), Key: []byte("k")}, nil)
		c.Flush()
	})
	time.Sleep(1500 * time.Millisecond)
	assertPutsServed(t, n, "j", slots, "connections of two owners' jobs sent stats")
	if st := n.Stats(); st.Net.FairShareEvictions == 0 {
		t.Fatalf("no connection evicted over its owner's fair share: %+v", st.Net)
	}
}
