package controller

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// keepBeat sends a node's heartbeat with used bytes, metrics, and the
// persisted values of ended jobs it keeps (none when keep is nil).
func keepBeat(t *testing.T, c *Controller, addr string, used int64, metrics []wire.Metric, keep []wire.HeldJob) {
	t.Helper()
	hb := &wire.Heartbeat{Addr: addr, Metrics: metrics, Persisted: keep, PersistedJobs: uint64(len(keep)),
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: used, Mbps: 1000}}}
	for _, h := range keep {
		hb.PersistedBytes += h.Bytes
	}
	for i := 0; i < 10; i++ {
		ack, err := c.Heartbeat(hb)
		if err != nil {
			t.Fatal(err)
		}
		if !ack.More {
			return
		}
	}
}

func nodeState(c *Controller, addr string) (wire.NodeState, bool) {
	for _, n := range c.Status().Nodes {
		if n.Addr == addr {
			return n.State, true
		}
	}
	return 0, false
}

// TestDrainRefusesNodeKeepingPersisted: a drain of a node that keeps
// persist-after-job values of ended jobs is refused (CodeConflict) with
// the jobs, their bytes and what to do, and changes nothing; the status
// shows the figures; the order with the discard goes ahead, and over the
// network the discard must be in the order's proof.
func TestDrainRefusesNodeKeepingPersisted(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	keep := []wire.HeldJob{{Job: "sort-4", Bytes: 5 << 20}, {Job: "grep-9", Bytes: 1 << 10}}
	keepBeat(t, c, a, 6<<20, nil, keep)
	_, err := c.Drain(a, time.Minute)
	if !errors.Is(err, wire.ErrConflict) {
		t.Fatalf("drain of a node keeping persisted values: %v, want a conflict", err)
	}
	// It says the list is the last heartbeat's (a new user's trial drained
	// again at once after deleting them, and read the same list).
	for _, want := range []string{"2 ended job(s), 5MiB: sort-4 5MiB, grep-9 1KiB", "pocket rm", "--discard-persisted",
		"as its last heartbeat reported them", "drain again after the next heartbeat"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if st, _ := nodeState(c, a); st != wire.NodeActive {
		t.Fatalf("refused drain left the node %v", st)
	}
	var jobs, bytes float64
	for _, n := range c.Status().Nodes {
		// The status names the jobs, so the operator knows whose
		// credential reads or deletes the values (before: counts only).
		want := []wire.HeldJob{{Job: "sort-4", Bytes: 5 << 20}, {Job: "grep-9", Bytes: 1 << 10}}
		if n.Addr == a && !reflect.DeepEqual(n.Persisted, want) || n.Addr == b && len(n.Persisted) != 0 {
			t.Errorf("status of %s names persisted jobs %+v; want %+v on %s only", n.Addr, n.Persisted, want, a)
		}
		for _, m := range n.Metrics {
			switch {
			case n.Addr == a && m.Name == wire.MetricPersistedJobs:
				jobs = m.Value
			case n.Addr == a && m.Name == wire.MetricPersistedBytes:
				bytes = m.Value
			case n.Addr == b && strings.HasPrefix(m.Name, "persisted"):
				t.Errorf("node %s keeps nothing but its status shows %s", b, m.Name)
			}
		}
	}
	if jobs != 2 || bytes != 5<<20+1<<10 {
		t.Fatalf("status: %v job(s), %v bytes persisted; want 2, %d", jobs, bytes, 5<<20+1<<10)
	}
	// Over the network: a plain proof with the discard flag set, or the
	// discard's proof without it, is refused; the discard's order passes.
	nonce := []byte("nonce-0123456789")
	plain := token.DrainProof(testSecret, nonce, a, 0)
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: plain, DiscardPersisted: true}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("discard added to a plain order: %v", err)
	}
	discard := token.DrainProofDiscard(testSecret, nonce, a, 0)
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: discard}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("discard taken off its order: %v", err)
	}
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: plain}); !errors.Is(err, wire.ErrConflict) {
		t.Fatalf("plain order over the network: %v", err)
	}
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: discard, DiscardPersisted: true}); err != nil {
		t.Fatalf("order with the discard: %v", err)
	}
	if st, _ := nodeState(c, a); st != wire.NodeDraining {
		t.Fatalf("node %v after the order with the discard", st)
	}
}

// TestDrainWaitsForPersistedAtItsEnd: a drain that would end (its moves
// done, or its deadline past) while the node keeps persisted values of
// ended jobs waits, logged once, and no longer counts as a running drain
// for scale-in; ordered again without the discard it is refused, naming
// the wait; it ends once the values are gone, or with the discard.
func TestDrainWaitsForPersistedAtItsEnd(t *testing.T) {
	for _, how := range []string{"deleted", "discarded"} {
		t.Run(how, func(t *testing.T) {
			logs := &logSink{}
			c := newTest(t, Config{Logger: logs.logger()})
			a, b := "127.0.0.1:7001", "127.0.0.1:7002"
			mustRegister(t, c, dramNode(a, 1<<30, 1000))
			mustRegister(t, c, dramNode(b, 1<<30, 1000))
			m, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
			if err != nil || len(m.Nodes) != 2 {
				t.Fatalf("register: %+v %v", m, err)
			}
			if _, err := c.Drain(a, time.Minute); err != nil {
				t.Fatal(err)
			}
			syncNode(t, c, a)
			// The job's values moved; another job ended meanwhile and
			// left its persisted values here.
			done := []wire.Metric{{Name: MetricDrainDone, Value: 1}}
			keep := []wire.HeldJob{{Job: "old-3", Bytes: 2 << 20}}
			keepBeat(t, c, a, 2<<20, done, keep)
			c.drainTick(time.Now())
			c.drainTick(time.Now().Add(time.Hour)) // past the deadline too
			if st, ok := nodeState(c, a); !ok || st != wire.NodeDraining {
				t.Fatalf("node left (%v %v) keeping persisted values", st, ok)
			}
			if k := strings.Count(logs.msgs(), "drain waits"); k != 1 {
				t.Fatalf("the wait logged %d times, want once:\n%s", k, logs.msgs())
			}
			if !logs.contains("1 ended job(s), 2MiB: old-3 2MiB") {
				t.Fatalf("the wait's log does not name the job and bytes:\n%s", logs.msgs())
			}
			if _, _, draining := c.utilization(1, false, false, 0.7); draining != 0 {
				t.Fatalf("a held drain counts as %d running", draining)
			}
			if _, err := c.Drain(a, time.Minute); !errors.Is(err, wire.ErrConflict) || !strings.Contains(err.Error(), "is draining") {
				t.Fatalf("a held drain ordered again without the discard: %v", err)
			}
			switch how {
			case "deleted":
				keepBeat(t, c, a, 0, done, nil)
			case "discarded":
				if _, err := c.DrainWith(a, DrainOptions{Deadline: time.Minute, DiscardPersisted: true}); err != nil {
					t.Fatal(err)
				}
			}
			c.drainTick(time.Now())
			if _, ok := nodeState(c, a); ok {
				t.Fatalf("node still listed once the values were %s", how)
			}
			if how == "discarded" && !logs.contains("leaves with persisted values of ended jobs") {
				t.Fatalf("the discard is not logged:\n%s", logs.msgs())
			}
		})
	}
}

// TestScaleInPassesOverNodesKeepingPersisted: scale-in drains no node that
// keeps persisted values of ended jobs, even the emptiest, and says so
// once; with every node keeping some it holds, naming the reason.
func TestScaleInPassesOverNodesKeepingPersisted(t *testing.T) {
	r := newScaleRig(t, 3, AutoscaleConfig{Smooth: 1})
	var addrs []string
	for _, n := range r.c.Status().Nodes {
		addrs = append(addrs, n.Addr)
	}
	keep := []wire.HeldJob{{Job: "old-1", Bytes: 512}}
	// The emptiest node, the one scale-in would drain first, keeps some.
	keepBeat(t, r.c, addrs[0], 1024, nil, keep)
	keepBeat(t, r.c, addrs[1], 4<<20, nil, nil)
	keepBeat(t, r.c, addrs[2], 8<<20, nil, keep)
	r.clock.advance(time.Minute)
	d := r.a.Step()
	if d.Action != ActionRemove || len(d.Drain) != 1 || d.Drain[0] != addrs[1] {
		t.Fatalf("scale-in: %+v, want to drain %s alone", d, addrs[1])
	}
	if !r.logs.contains("scale-in passes over") {
		t.Fatalf("passing over is not logged:\n%s", r.logs.msgs())
	}
	// Every node left keeps some: hold, and say why once.
	r2 := newScaleRig(t, 3, AutoscaleConfig{Smooth: 1})
	for _, n := range r2.c.Status().Nodes {
		keepBeat(t, r2.c, n.Addr, 1024, nil, keep)
	}
	for i := 0; i < 3; i++ {
		r2.clock.advance(time.Minute)
		if d := r2.a.Step(); d.Action == ActionRemove {
			t.Fatalf("scale-in drained %v, which keep persisted values of ended jobs", d.Drain)
		}
	}
	if k := strings.Count(r2.logs.msgs(), "3 keep persisted values of ended jobs"); k != 1 {
		t.Fatalf("the hold logged %d times, want once:\n%s", k, r2.logs.msgs())
	}
	if k := strings.Count(r2.logs.msgs(), "scale-in passes over"); k != 1 {
		t.Fatalf("passing over logged %d times, want once:\n%s", k, r2.logs.msgs())
	}
}

// TestHeldDrainReleasesLiveJobsMaps: a drain held at its end for the
// persisted values of an ended job takes its node out of the live jobs'
// maps (their values moved), so they can grow and shrink again; the node
// stays, draining, until the values go. Before, the jobs' maps kept the
// node draining for as long as the hold lasted: a hostile trial's tenant
// froze another tenant's map that way.
func TestHeldDrainReleasesLiveJobsMaps(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	m, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m, err)
	}
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	syncNode(t, c, a)
	done := []wire.Metric{{Name: MetricDrainDone, Value: 1}}
	keep := []wire.HeldJob{{Job: "old-3", Bytes: 2 << 20}}
	keepBeat(t, c, a, 2<<20, done, keep)
	for range 3 { // the release, then each node's confirmation of the map without a
		c.drainTick(time.Now())
		keepBeat(t, c, a, 2<<20, done, keep)
		syncNode(t, c, b)
	}
	if st, ok := nodeState(c, a); !ok || st != wire.NodeDraining {
		t.Fatalf("node %v %v; want it draining, held for the persisted values", st, ok)
	}
	got, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, in := mapState(got, a); in || len(got.Nodes) != 1 || got.Nodes[0].Addr != b || len(got.Lost) != 0 {
		t.Fatalf("the live job's map during the held drain: %+v; want %s alone, %s gone from it and not lost", got, b, a)
	}
}
