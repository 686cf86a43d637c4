package controller

import (
	"context"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestChangeLogLetsGoOfEndedJobs: the change log keeps a revoked job's
// id, gen and expiry for the nodes' deltas, not the job itself (its maps,
// token, hints). Before, every job whose changes were among the log's last
// 65,536 stayed in memory whole after it ended: about 1 KB a job, 31 MB
// of a controller's heap after 30,000 short jobs (a soak), for as long as
// it ran.
func TestChangeLogLetsGoOfEndedJobs(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	since := c.heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001"}).Rev
	var ids []string
	for range 20 {
		m, err := c.RegisterJob("j", wire.JobHints{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeregisterJob(context.Background(), m.Job, m.Token); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Job)
	}
	c.mu.Lock()
	for i, ch := range c.log.buf {
		if ch.j.j != nil && ch.j.j.revoked {
			t.Errorf("log entry %d (%s) still holds revoked job %s whole", i, ch.j.id, ch.j.j.id)
		}
	}
	c.mu.Unlock()
	// The nodes still learn each ended job's revocation from the log.
	ack := c.heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001", Since: since})
	got := map[string]wire.JobEpoch{}
	for _, je := range ack.Jobs {
		got[je.Job] = je
	}
	for _, id := range ids {
		je, ok := got[id]
		if !ok || !je.Revoked || je.Gen == 0 {
			t.Errorf("delta entry of ended job %s: %+v (found %v), want it revoked with its gen", id, je, ok)
		}
	}
}

// TestTableEntriesSayTheOwner: the nodes' table names who registered each
// job (wire.JobEpoch.Owner: the tenant, else the client's address), live
// and revoked, so that a node bounds the connections of all of one
// tenant's jobs together (dataplane's proveFor). Before, a node knew only
// the job, and a tenant's two jobs held every connection slot of a node.
func TestTableEntriesSayTheOwner(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	since := c.heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001"}).Rev
	a, err := c.RegisterJobFor("10.0.0.9", "alice", &wire.JobRegister{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.RegisterJobFor("10.0.0.7", "", &wire.JobRegister{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	owners := func(ack *wire.NodeAck) map[string]string {
		got := map[string]string{}
		for _, je := range ack.Jobs {
			got[je.Job] = je.Owner
		}
		return got
	}
	want := map[string]string{a.Job: "tenant alice", b.Job: "10.0.0.7"}
	for name, ack := range map[string]*wire.NodeAck{"snapshot": c.heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001"}),
		"delta": c.heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001", Since: since})} {
		if got := owners(ack); got[a.Job] != want[a.Job] || got[b.Job] != want[b.Job] {
			t.Errorf("%s entries' owners %v, want %v", name, got, want)
		}
	}
	since = c.heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001", Since: since}).Rev
	if _, err := c.DeregisterJob(context.Background(), a.Job, a.Token); err != nil {
		t.Fatal(err)
	}
	ack := c.heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001", Since: since})
	if got := owners(ack); got[a.Job] != "tenant alice" {
		t.Errorf("revoked entry's owner %q, want %q", got[a.Job], "tenant alice")
	}
}
