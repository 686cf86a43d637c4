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
