package dataplane

import (
	"fmt"
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
// 10 of 10 gets refused). A put on the node's reserve showing a valid
// token of an owner below its fair share now takes the slot of an owner
// over it (netio's fairshare.go, dataplane's promote). Fails on the code
// before 6c30ed2: 0 of 5 puts served.
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
	// The third owner's first put came on the reserve, showed its token
	// and was promoted in place of a connection of an owner over its fair
	// share (netio's fairshare.go).
	if st := n.Stats(); st.Net.Promoted == 0 || st.Net.FairShareEvictions == 0 {
		t.Fatalf("no connection promoted, or none evicted over its owner's fair share: %+v", st.Net)
	}
}

// TestPendingJobProvesNothing: connections of a job the controller has not
// listed yet (its owner unknown) are not proven until a request after the
// table names the owner; then they count against that owner. Before, they
// were proven for the job itself, another owner, so a tenant at its
// bound got more slots with each new job (a hostile trial: 20 to 30 of
// 100 connections opened within 45 ms of a registration). Fails on the
// old code: OverOwner stays 0 (the new job's 3 connections were proven
// under the job).
func TestPendingJobProvesNothing(t *testing.T) {
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1, MaxConns: 8}})
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "h1", Gen: 90, Epoch: 1, Owner: "tenant mallory"}))
	put := func(c *client.Conn, job string, gen uint64, key string) {
		t.Helper()
		r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte(job), Key: []byte(key), Token: jobTok(job, gen), Epoch: 1}, []byte("v"))
		if err := r.Err(); err != nil {
			t.Fatalf("put %s/%s: %v", job, key, err)
		}
	}
	for i := range 4 { // mallory's bound: half of 8
		put(dial(t, n, "h1"), "h1", 90, fmt.Sprint("k", i))
	}
	var h2 []*client.Conn
	for i := range 3 { // a job registered since the table came: pending (its puts wait)
		c := dial(t, n, "h2")
		pendingRead(t, c, "h2", 120, fmt.Sprint("k", i))
		h2 = append(h2, c)
	}
	if st := n.Stats().Net; st.OverOwner != 0 {
		t.Fatalf("OverOwner %d before the table names h2's owner, want 0", st.OverOwner)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 125,
		Jobs: []wire.JobEpoch{{Job: "h2", Gen: 120, Epoch: 1, Owner: "tenant mallory"}}})
	for i, c := range h2 {
		put(c, "h2", 120, fmt.Sprint("again", i))
	}
	if st := n.Stats().Net; st.OverOwner != 3 {
		t.Fatalf("OverOwner %d once the table named h2's owner, want 3: its connections count against mallory, at her bound", st.OverOwner)
	}
}
