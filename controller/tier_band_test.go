package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/wire"
)

// TestTierChosenUnderTheBand: on an autoscaling cluster (band high 80 %)
// an NVMe node carrying 900 of its 1,000 Mb/s has 100 Mb/s of whole spare
// but none under the band, while the DRAM node beside it is idle. A job
// hinting 50 Mb/s goes to DRAM, where it is placed under the band. Before,
// the tier was chosen by whole spare: NVMe (cheaper, and its 100 Mb/s
// covered 50) took the job, and it was placed on a node already past the
// band, while reserve had counted the DRAM node's room and started nothing.
func TestTierChosenUnderTheBand(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{MaxNodes: 4})
	const nv = "127.0.0.1:7950"
	mustRegister(t, r.c, &wire.NodeRegister{Addr: nv, Cores: 2,
		Tiers: []wire.TierStat{{Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 1000}}})
	hb := &wire.Heartbeat{Addr: nv, RxMbps: 900, Tiers: []wire.TierStat{{Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 1000}}}
	for i := 0; i < 10; i++ {
		ack, err := r.c.Heartbeat(hb)
		if err != nil {
			t.Fatal(err)
		}
		if !ack.More {
			break
		}
	}
	m, err := r.c.RegisterJob("small", wire.JobHints{PeakMbps: 50, CapacityBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if wire.Tier(m.Tier) != wire.TierDRAM || len(m.Nodes) != 1 || m.Nodes[0].Addr == nv {
		t.Fatalf("job placed on tier %v over %+v; want DRAM on the idle node (NVMe node at 900 of 1,000 Mb/s)", m.Tier, m.Nodes)
	}
	if n := len(r.a.Decisions()); n != 0 {
		t.Errorf("%d autoscaler decisions; want none (the DRAM node has room)", n)
	}
}

// TestRegistrationAtMaxNodesSaysSo: a job whose bandwidth need wants a
// node more than --max-nodes allows is placed over the nodes there are,
// and its reply says the cluster is at its maximum. Before, nothing said
// so (a hostile trial saw 7,800 Mb/s allotted on a cluster of 6,000, and
// only status's OVERSUBSCRIBED told).
func TestRegistrationAtMaxNodesSaysSo(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{MaxNodes: 2})
	for _, name := range []string{"a", "b"} {
		m, err := r.c.RegisterJob(name, wire.JobHints{PeakMbps: 700})
		if err != nil || m.Note != "" {
			t.Fatalf("job %s: %v, note %q; want it placed without a note", name, err, m.Note)
		}
	}
	if r.active() != 2 {
		t.Fatalf("%d active nodes; want 2", r.active())
	}
	m, err := r.c.RegisterJob("c", wire.JobHints{PeakMbps: 700})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"maximum of 2 nodes (--max-nodes)", "wanted 1 more", "job c's hints need 700 Mb/s", "may carry less"} {
		if !strings.Contains(m.Note, s) {
			t.Errorf("note %q does not say %q", m.Note, s)
		}
	}
	if r.active() != 2 {
		t.Errorf("%d active nodes past the maximum of 2", r.active())
	}
}

// TestRegistrationBelowMaxNodesSaysHowManyStart: a job wanting more nodes
// than --max-nodes allows on a cluster below it starts what the maximum
// allows, and its note says so, not that the cluster was at its maximum
// (it said so of a 1-node cluster that started 3, a new user's trial).
func TestRegistrationBelowMaxNodesSaysHowManyStart(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{MaxNodes: 3})
	if _, err := r.c.RegisterJob("a", wire.JobHints{PeakMbps: 700}); err != nil {
		t.Fatal(err)
	}
	// 2,000 Mb/s: within 3 nodes at the band (2,400), but with 100 left
	// on the active node it wants 3 more.
	m, err := r.c.RegisterJob("big", wire.JobHints{PeakMbps: 2000})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"wanted 3 more nodes than the 1 active", "maximum of 3 nodes (--max-nodes) lets it start 2", "may carry less"} {
		if !strings.Contains(m.Note, s) {
			t.Errorf("note %q does not say %q", m.Note, s)
		}
	}
	if strings.Contains(m.Note, "is at the autoscaler's maximum") {
		t.Errorf("note %q: the cluster was below its maximum", m.Note)
	}
	if r.active() != 3 {
		t.Errorf("%d active nodes; want the maximum, 3", r.active())
	}
}

// TestDefaultJobLeavesTheRoomOthersCounted: a job Pocket's default sizes,
// registered while the node started for a hinted job is still starting,
// is allotted the room under the band less what the hinted job holds, so
// the hinted one is then placed under the band. Before, the default job
// took all 6,400 Mb/s of the one active node's room, and the hinted job's
// 9,000 Mb/s went on a node already at the band (a trial saw 968 Mb/s on
// nodes whose band is 800).
func TestDefaultJobLeavesTheRoomOthersCounted(t *testing.T) {
	r := newScaleRig(t, 0, AutoscaleConfig{MaxNodes: 4})
	r.orch.mu.Lock()
	r.orch.mbps = 8000
	r.orch.mu.Unlock()
	if _, err := r.orch.Start(context.Background(), orchestrator.NodeSpec{}); err != nil {
		t.Fatal(err)
	}
	hinted, dflt := registerTwoAtOnce(t, r, 9000, 0)
	if r.active() != 2 {
		t.Fatalf("%d active nodes; want 2 (9,000 Mb/s on 8,000 Mb/s nodes under 80%%)", r.active())
	}
	if dflt.Sized != wire.SizedDefault {
		t.Fatalf("second job sized %v; want Pocket's default", dflt.Sized)
	}
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	for addr, l := range r.c.loads {
		if l.mbps > 6400+1e-6 {
			t.Errorf("node %s allotted %.0f Mb/s, over 80%% of its 8,000 (hinted on %d node(s), default-sized allotted %.0f)",
				addr, l.mbps, len(hinted.Nodes), dflt.AllocMbps)
		}
	}
}
