package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestRegisterLearnsFromLastRun: through the controller's own calls, a
// hint-less job that used 3000 Mb/s and 5 GB is followed by one of its
// name sized within 25 % of that, also after a restart on the same store.
func TestRegisterLearnsFromLastRun(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{FirstJobSeq: 1, Store: st})
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	for _, a := range addrs {
		mustRegister(t, c, dramNode(a, 60e9, 8000))
	}
	m, err := c.RegisterJob("sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 3; s++ {
		for _, mn := range m.Nodes {
			hb := &wire.Heartbeat{Addr: mn.Addr, RxMbps: 1500, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 60e9, Mbps: 8000, UsedBytes: 2.5e9}}}
			if _, err := c.Heartbeat(hb); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	check := func(c *Controller, what string) {
		t.Helper()
		m, err := c.RegisterJob("sort", wire.JobHints{})
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		j := c.jobs[m.Job]
		mbps, bytes := j.allocMbps, j.allocBytes
		c.mu.Unlock()
		if !within(mbps, 3000, 0.25) || !within(float64(bytes), 5e9, 0.25) || len(m.Nodes) != 1 {
			t.Fatalf("%s: %d nodes, %.0f Mb/s, %d bytes; want 1 node, within 25%% of 3000 Mb/s and 5e9 bytes", what, len(m.Nodes), mbps, bytes)
		}
	}
	check(c, "second run")
	snap, _ := st.Load()
	if len(snap.Profiles) != 1 || snap.Profiles[0].Name != "sort" {
		t.Fatalf("stored profiles %+v", snap.Profiles)
	}
	c.Close()
	r := newTest(t, Config{Store: st})
	for _, a := range addrs {
		mustRegister(t, r, dramNode(a, 60e9, 8000))
	}
	check(r, "after a restart")
}

// TestRegisterRefusesWhatFitsNoTier: a capacity hint over every tier's
// spare is refused at registration, naming the need and the largest tier.
func TestRegisterRefusesWhatFitsNoTier(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, &wire.NodeRegister{Addr: "127.0.0.1:7001", Tiers: []wire.TierStat{
		{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}, {Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 4000}}})
	_, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: 200 << 30})
	if !errors.Is(err, wire.ErrNoSpace) || !strings.Contains(err.Error(), "nvme") || !strings.Contains(err.Error(), "107374182400 bytes") {
		t.Fatalf("200 GiB on 8 GiB DRAM + 100 GiB NVMe: %v", err)
	}
	// Cost-aware: 50 GiB goes to NVMe; 6 GiB at 6000 Mb/s to DRAM, the
	// only tier with the bandwidth.
	for _, c2 := range []struct {
		h    wire.JobHints
		want uint8
	}{{wire.JobHints{CapacityBytes: 50 << 30, PeakMbps: 1000}, kindNVMe}, {wire.JobHints{CapacityBytes: 6 << 30, PeakMbps: 6000}, kindDRAM}} {
		m, err := c.RegisterJob("j", c2.h)
		if err != nil || m.Tier != c2.want {
			t.Fatalf("%+v: %+v, %v; want tier %d", c2.h, m, err, c2.want)
		}
	}
}

func TestProfileAccessor(t *testing.T) {
	c := newTest(t, Config{})
	if _, _, ok := c.Profile("none"); ok {
		t.Fatal("a profile for a name never run")
	}
	c.mu.Lock()
	c.prof.record("x", state.Run{Job: "x-1", PeakMbps: 1000, PeakBytes: 1e9})
	c.mu.Unlock()
	p, l, ok := c.Profile("x")
	if !ok || len(p.Runs) != 1 || !within(l.Mbps, 1100, 1e-9) {
		t.Fatalf("Profile = %+v, %+v, %v", p, l, ok)
	}
}
