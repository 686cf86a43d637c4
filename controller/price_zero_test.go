package controller

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestExplicitZeroPriceIsKept: a prices file may give a price of 0 (Check
// accepts "a finite number of dollars, 0 or more": DRAM already paid
// for, say), and the controller must then price that tier at 0. A 10 GiB
// job at 1000 Mb/s that fits both tiers of the node then costs $0.01/h
// on DRAM (network only) against $0.02/h on NVMe (10 GiB x $0.001 plus
// the same network), so TierFor must pick DRAM. OrDefault cannot tell a
// price given as 0 from one not given, and replaces it by the AWS
// default ($0.0079 per GiB-hour), so the job goes to NVMe.
func TestExplicitZeroPriceIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(path, []byte(`{"dram_gib_hour": 0, "nvme_gib_hour": 0.001, "gbps_hour": 0.01}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPrices(path)
	if err != nil {
		t.Fatal(err)
	}
	c := newTest(t, Config{FirstJobSeq: 1, Prices: p})
	mustRegister(t, c, &wire.NodeRegister{Addr: "127.0.0.1:7001", Tiers: []wire.TierStat{
		{Kind: kindDRAM, CapacityBytes: 64 << 30, Mbps: 8000}, {Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 8000}}})
	m, err := c.RegisterJob("j", wire.JobHints{CapacityBytes: 10 << 30, PeakMbps: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if m.Tier != kindDRAM {
		t.Errorf("tier %v; want dram: the file prices DRAM at 0 (the job costs %.4f $/h there, %.4f $/h on NVMe), "+
			"but the controller priced it at %.6f $/h a GiB", wire.Tier(m.Tier), p.Cost(wire.TierDRAM, 1000, 10<<30),
			p.Cost(wire.TierNVMe, 1000, 10<<30), p.OrDefault().DRAMGiBHour)
	}
}
