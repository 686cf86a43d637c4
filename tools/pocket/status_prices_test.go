package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// TestStatusCostsAtTheControllersPrices: `pocket status` prices each job
// at the controller's prices, which its status reply carries, not at the
// CLI's own table. A controller priced at $1 per GiB-hour of DRAM and $1
// per Gb/s-hour (the user's --price-dram-gib-hour 1 --price-gbps-hour 1)
// with a job of 100 MiB at 1000 Mb/s: status must show about 1.0977 $/h
// (100/1024 + 1); it showed 0.0110 $/h, the default table's, when given no
// price flags.
func TestStatusCostsAtTheControllersPrices(t *testing.T) {
	addr := pricedController(t)
	out, code := stdoutOf(t, func() int {
		return runStatus([]string{"--controller", addr, "--insecure", "--json"})
	})
	if code != 0 {
		t.Fatalf("status --json: exit %d", code)
	}
	var v struct {
		Controller string `json:"controller"`
		Jobs       []struct {
			CostPerHour float64 `json:"cost_per_hour"`
		} `json:"jobs"`
		Prices map[string]any `json:"prices"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Jobs) != 1 {
		t.Fatalf("status --json: %v, %d jobs: %s", err, len(v.Jobs), out)
	}
	// The controller that answered is named (which one leads, among
	// several, was in the logs only: a new user's trial).
	if v.Controller != addr {
		t.Errorf("status --json names controller %q; want %q", v.Controller, addr)
	}
	if out, _ := stdoutOf(t, func() int { return runStatus([]string{"--controller", addr, "--insecure"}) }); !strings.HasPrefix(out, "controller "+addr+" ") {
		t.Errorf("status begins %q; want the controller that answered", strings.SplitN(out, "\n", 2)[0])
	}
	want := 100.0/1024 + 1
	// --json rounds figures to six significant digits (writeJSON).
	if got := v.Jobs[0].CostPerHour; math.Abs(got-want) > 1e-5 {
		t.Errorf("cost %.4f $/h; want %.4f $/h, the controller's prices ($1 per GiB-hour of DRAM, $1 per Gb/s-hour)", got, want)
	}
	if v.Prices["source"] != "controller" || v.Prices["dram_gib_hour"] != 1.0 || v.Prices["gbps_hour"] != 1.0 {
		t.Errorf("prices %v; want the controller's (1, 0.001, 1), source controller", v.Prices)
	}
}

// TestStatusPricesFallBack: a status reply without prices (a controller
// older than them) is priced at the flags', else the default table, with a
// note saying so; flags against a controller that sends its prices are
// not used, with a note; a reply's bad prices are not used either.
func TestStatusPricesFallBack(t *testing.T) {
	st := &wire.ClusterStatus{}
	p, source, note, err := statusPrices(st, &priceFlags{})
	if err != nil || p != controller.DefaultPrices() || source != pricesFromDefault || !strings.Contains(note, "does not send its prices") {
		t.Errorf("no prices, no flags: %+v from %q (%q, %v); want the default table and a note", p, source, note, err)
	}
	file := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(file, []byte(`{"dram_gib_hour": 2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	pf := &priceFlags{file: file, gbps: 0, gbpsSet: true}
	p, source, note, err = statusPrices(st, pf)
	if err != nil || p != controller.ExactPrices(2, controller.DefaultPrices().NVMeGiBHour, 0) || source != pricesFromFlags ||
		!strings.Contains(note, "the prices of --prices and --price-*") {
		t.Errorf("no prices, flags: %+v from %q (%q, %v); want the flags' (2, default, 0)", p, source, note, err)
	}
	st.Prices = &wire.PriceTable{DRAMGiBHour: 0.5, NVMeGiBHour: 0, GbpsHour: 0.25}
	p, source, note, err = statusPrices(st, pf)
	if err != nil || p != controller.ExactPrices(0.5, 0, 0.25) || source != pricesFromController || !strings.Contains(note, "only price") {
		t.Errorf("the controller's prices and flags: %+v from %q (%q, %v); want the controller's, a note on the flags", p, source, note, err)
	}
	if _, _, note, _ = statusPrices(st, &priceFlags{}); note != "" {
		t.Errorf("the controller's prices, no flags: note %q; want none", note)
	}
	st.Prices = &wire.PriceTable{DRAMGiBHour: 1e308}
	p, source, note, _ = statusPrices(st, &priceFlags{})
	if source != pricesFromDefault || p != controller.DefaultPrices() || !strings.Contains(note, "not valid") {
		t.Errorf("the controller's prices over MaxPrice: %+v from %q (%q); want the default table and a note", p, source, note)
	}
}

// pricedController starts a controller priced at $1 per GiB-hour of DRAM,
// $0.001 of NVMe and $1 per Gb/s-hour, with one node and a job of 100 MiB
// at 1000 Mb/s, and returns its address.
func pricedController(t *testing.T) string {
	t.Helper()
	ctl, addr := drainControllerWith(t, string(hintSecret), controller.Config{HeartbeatInterval: time.Hour,
		Prices: controller.ExactPrices(1, 0.001, 1)})
	if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: "127.0.0.1:7001", Tiers: []wire.TierStat{
		{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.RegisterJob("priced", wire.JobHints{CapacityBytes: 100 << 20, PeakMbps: 1000, LatencySensitive: true}); err != nil {
		t.Fatal(err)
	}
	return addr
}
