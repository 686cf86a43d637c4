package dataplane

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestPendingJobsConnectionsProvenWhenOwnerNamed (hostile re-check): a
// job's connections whose only requests came while the job was pending
// (its first milliseconds, before a heartbeat's table named its owner),
// then idle, are proven for the owner once the table names it, without
// another request; a flood at the node's limit then takes the tokenless
// connections' slots, not theirs. Before, they stayed unproven until
// their next request, and were the first a flood evicted: 91 of 100 in
// the re-check; here 4 of 4. A table that lists the job with no owner (an
// older controller) proves them for the job.
func TestPendingJobsConnectionsProvenWhenOwnerNamed(t *testing.T) {
	for _, owner := range []string{"tenant alice", ""} {
		t.Run(fmt.Sprintf("owner %q", owner), func(t *testing.T) { pendingProven(t, owner) })
	}
}

func pendingProven(t *testing.T, owner string) {
	const slots = 8
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1, MaxConns: slots}})
	n.ApplyAck(syncAck(100))
	put := func(c *client.Conn, key string) error {
		if _, err := c.Send(wire.OpPut, 0, &wire.Request{Job: []byte("h2"), Key: []byte(key), Token: jobTok("h2", 120), Epoch: 1}, []byte("v")); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
		r, err := c.Recv()
		if err != nil {
			return err
		}
		return r.Err()
	}
	var job []*client.Conn
	for i := range slots / 2 { // a job registered since the table came: pending (its puts wait)
		c := dial(t, n, "h2")
		pendingRead(t, c, "h2", 120, fmt.Sprint("k", i))
		job = append(job, c)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 125,
		Jobs: []wire.JobEpoch{{Job: "h2", Gen: 120, Epoch: 1, Owner: owner}}})
	flood := func() {
		for range slots / 2 {
			nc, err := net.Dial("tcp", n.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
		}
	}
	flood() // the node is full
	time.Sleep(netio.UnprovenGrace + 100*time.Millisecond)
	flood() // each takes the slot of the oldest unproven connection
	time.Sleep(100 * time.Millisecond)
	lost := 0
	for i, c := range job {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := put(c, fmt.Sprint("again", i)); err != nil {
			lost++
			t.Logf("connection %d of the job: %v", i, err)
		}
	}
	st := n.Stats().Net
	t.Logf("evicted unproven %d, open %d", st.UnprovenEvictions, st.Open)
	if lost > 0 {
		t.Fatalf("%d of the job's %d idle connections lost their slot to a tokenless flood after the table named the job's owner", lost, len(job))
	}
	if st.UnprovenEvictions == 0 {
		t.Fatal("the flood evicted nothing: the test tested nothing")
	}
}

// pendingRead sends a get of key for job (gen) on c, a job the node has
// not heard of from its controller (pending: it takes reads, and refuses
// puts until the controller lists it), and wants not found.
func pendingRead(t *testing.T, c *client.Conn, job string, gen uint64, key string) {
	t.Helper()
	r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte(job), Key: []byte(key), Token: jobTok(job, gen), Epoch: 1}, nil)
	if err := r.Err(); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("get %s/%s of a pending job: %v, want not found", job, key, err)
	}
}
