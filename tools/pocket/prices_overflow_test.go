package main

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// TestStatusJSONWithHugePrices: the price flags accept any finite price
// (controller.Prices.Check: "a finite number of dollars, 0 or more"), and
// `pocket status --json` must then still print. A DRAM price of 1e308 $
// per GiB-hour passes the check, but a job allotted 2 GiB of DRAM costs
// 2 x 1e308 = +Inf $/h (Prices.Cost multiplies without a bound), and the
// JSON encoder refuses +Inf: status --json fails for every job of the
// cluster ("json: unsupported value: +Inf"), and the plain table prints
// "+Inf" as the job's cost and the total. A price whose cost of a job
// within the job bounds (wire.MaxJobBytes, wire.MaxJobMbps) is not finite
// should be refused with the other bad prices, or the cost held finite.
func TestStatusJSONWithHugePrices(t *testing.T) {
	pf := priceFlags{dram: 1e308}
	p, err := pf.prices()
	if err != nil {
		if !errors.Is(err, controller.ErrBadPrice) {
			t.Fatalf("--price-dram-gib-hour 1e308: %v; want it accepted, or refused as a bad price", err)
		}
		return // refused with the other bad prices
	}
	st := &wire.ClusterStatus{JobCount: 1, Jobs: []wire.JobStatus{
		{Job: "a-1", Name: "a", Tier: uint8(wire.TierDRAM), AllocMbps: 1000, AllocBytes: 2 << 30}}}
	v := statusViewAt(st, p)
	if _, err := json.Marshal(v); err != nil {
		t.Fatalf("--price-dram-gib-hour 1e308 is accepted, and status --json of a 2 GiB DRAM job fails: %v (cost %v $/h)", err, v.Jobs[0].CostPerHour)
	}
}
