package controller

import (
	"errors"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestCapacityRefusalAdviceFollowsTheNeedsSource: a capacity refusal's
// advice names the hint as every client spells it, to be lowered. Before,
// a job registered with --capacity was told that "a job without size
// hints is sized from its name's profile: give --capacity to size it
// yourself". A profile's need is never refused
// (TestProfileSizeOverTheSpareRegisters).
func TestCapacityRefusalAdviceFollowsTheNeedsSource(t *testing.T) {
	const hintAdvice = "lower the capacity hint (--capacity, capacity_bytes)"
	check := func(what string, err error, want, not string) {
		t.Helper()
		if !errors.Is(err, wire.ErrNoSpace) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), not) {
			t.Errorf("%s: %v; want no space, saying %q and not %q", what, err, want, not)
		}
	}
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, &wire.NodeRegister{Addr: "127.0.0.1:7001", Tiers: []wire.TierStat{
		{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}}})
	_, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: 200 << 30})
	check("a hinted capacity, no autoscaler", err, hintAdvice, "profile")

	r := newScaleRig(t, 1, AutoscaleConfig{})
	_, err = r.c.RegisterJob("huge", wire.JobHints{CapacityBytes: 9 << 30})
	check("a hinted capacity over the autoscaler's maximum", err, hintAdvice+", or raise the maximum (--max-nodes)", "profile")

	offers := []TierOffer{{Tier: wire.TierDRAM, Nodes: 1, SpareMbps: 8000, SpareBytes: 1 << 30}}
	_, err = TierFor(Need{Bytes: 2 << 30}, offers, DefaultPrices())
	check("a capacity from nowhere said", err, "lower the capacity need (the capacity hint (--capacity, capacity_bytes))", "profile")
}
