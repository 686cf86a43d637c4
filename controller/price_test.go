package controller

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/internal/limited"
	"github.com/pocketstore/pocket/wire"
)

// TestDefaultPrices checks the derivation from the cited instance prices:
// DRAM costs about 100 times NVMe per GiB-hour, and the figures are the
// documented ones.
func TestDefaultPrices(t *testing.T) {
	p := DefaultPrices()
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"dram", p.DRAMGiBHour, 0.007875}, {"nvme", p.NVMeGiBHour, 0.0000812}, {"net", p.GbpsHour, 0.01022}} {
		if math.Abs(c.got-c.want)/c.want > 0.01 {
			t.Errorf("%s price %.7f; want %.7f within 1%%", c.name, c.got, c.want)
		}
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	// 10 GiB and 1 Gb/s for an hour.
	if got, want := p.Cost(wire.TierDRAM, 1000, 10<<30), 10*p.DRAMGiBHour+p.GbpsHour; math.Abs(got-want) > 1e-12 {
		t.Errorf("Cost = %v; want %v", got, want)
	}
	if got := p.Cost(wire.TierNVMe, -5, -1); got != 0 {
		t.Errorf("Cost of nothing = %v", got)
	}
}

func TestLoadPrices(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p, err := LoadPrices(write("ok.json", `{"dram_gib_hour": 0.01, "gbps_hour": 0}`))
	if err != nil || p != ExactPrices(0.01, DefaultPrices().NVMeGiBHour, 0) {
		t.Fatalf("LoadPrices = %+v, %v; want the file's DRAM and network (0 kept), the default NVMe", p, err)
	}
	if got := p.OrDefault(); got != p {
		t.Fatalf("OrDefault of a file's table = %+v; want it unchanged (%+v)", got, p)
	}
	// A partial table (a literal) still takes the default for a zero price.
	if got := (Prices{DRAMGiBHour: 0.01}).OrDefault(); got != ExactPrices(0.01, DefaultPrices().NVMeGiBHour, DefaultPrices().GbpsHour) {
		t.Fatalf("OrDefault of a literal = %+v; want the default NVMe and network prices", got)
	}
	for name, body := range map[string]string{
		"unknown.json":  `{"dram_gib_hour": 1, "ssd": 2}`,
		"negative.json": `{"nvme_gib_hour": -1}`,
		"huge.json":     `{"dram_gib_hour": 1e308}`,
		"text.json":     `cheap`,
		"big.json":      `{"gbps_hour": 1` + strings.Repeat(" ", maxPricesFile) + `}`,
		// Found by a hostile trial: a second object, with its bad price,
		// and trailing text were ignored.
		"two.json":      `{"dram_gib_hour": 1}{"nvme_gib_hour": -3}`,
		"trailing.json": `{"dram_gib_hour": 1} garbage`,
		"bracket.json":  `{"dram_gib_hour": 1}]`,
		// Found by a new-user trial: another case was taken, null was
		// the default.
		"case.json": `{"DRAM_GIB_HOUR": 5}`,
		"null.json": `{"dram_gib_hour": null}`,
		// Found by a hostile trial: a bare null read as an empty object.
		"bare-null.json": `null`,
		// Found by a new-user trial: the last of two was taken.
		"twice.json": `{"dram_gib_hour": 1, "nvme_gib_hour": 0.1, "dram_gib_hour": 2}`,
	} {
		if _, err := LoadPrices(write(name, body)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v; want an error naming the file", name, err)
		}
	}
	if _, err := LoadPrices(write("space.json", "{\"dram_gib_hour\": 1}\n \n")); err != nil {
		t.Errorf("an object followed by white space: %v", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := LoadPrices("/dev/zero"); !errors.Is(err, limited.ErrNotRegular) {
			t.Errorf("/dev/zero: %v; want it refused, not read (it was read whole once)", err)
		}
	}
	if err := (Prices{GbpsHour: math.NaN()}).Check(); !errors.Is(err, ErrBadPrice) || !strings.Contains(err.Error(), "gbps_hour") {
		t.Errorf("NaN price: %v", err)
	}
	// The largest prices Check passes keep every cost finite, even of
	// figures beyond the job bounds.
	top := ExactPrices(MaxPrice, MaxPrice, MaxPrice)
	if err := top.Check(); err != nil {
		t.Fatalf("MaxPrice: %v", err)
	}
	if err := ExactPrices(MaxPrice*1.5, 0, 0).Check(); !errors.Is(err, ErrBadPrice) {
		t.Errorf("a price over MaxPrice: %v; want ErrBadPrice", err)
	}
	if c := top.Cost(wire.TierDRAM, math.MaxFloat64, math.MaxInt64); math.IsInf(c, 0) || math.IsNaN(c) || c <= 0 {
		t.Errorf("cost at MaxPrice of the largest figures = %v; want finite", c)
	}
}

// offers of a cluster whose nodes each have both tiers.
func offers(nodes int, dramMbps, nvmeMbps float64, dramBytes, nvmeBytes int64) []TierOffer {
	return []TierOffer{
		{Tier: wire.TierDRAM, Nodes: nodes, SpareMbps: dramMbps, SpareBytes: dramBytes},
		{Tier: wire.TierNVMe, Nodes: nodes, SpareMbps: nvmeMbps, SpareBytes: nvmeBytes},
	}
}

func TestTierFor(t *testing.T) {
	p := DefaultPrices()
	const gib = 1 << 30
	cases := []struct {
		name string
		need Need
		offs []TierOffer
		want wire.Tier
	}{
		{"capacity: NVMe is cheaper", Need{Mbps: 1000, Bytes: 50 * gib}, offers(2, 16000, 16000, 100*gib, 800*gib), wire.TierNVMe},
		{"no capacity need: equal cost, cheaper GiB", Need{Mbps: 1000}, offers(2, 16000, 16000, 100*gib, 800*gib), wire.TierNVMe},
		{"latency-sensitive: DRAM", Need{Mbps: 1000, Bytes: gib, LatencySensitive: true}, offers(2, 16000, 16000, 100*gib, 800*gib), wire.TierDRAM},
		{"NVMe too slow: DRAM meets the bandwidth", Need{Mbps: 12000, Bytes: gib}, offers(2, 16000, 4000, 100*gib, 800*gib), wire.TierDRAM},
		{"too big for DRAM: NVMe", Need{Mbps: 12000, Bytes: 200 * gib}, offers(2, 16000, 4000, 100*gib, 800*gib), wire.TierNVMe},
		{"nobody meets the bandwidth: the cheapest", Need{Mbps: 50000, Bytes: gib}, offers(2, 16000, 4000, 100*gib, 800*gib), wire.TierNVMe},
		{"only DRAM nodes", Need{Mbps: 1000, Bytes: gib}, []TierOffer{{Tier: wire.TierDRAM, Nodes: 1, SpareMbps: 8000, SpareBytes: 10 * gib}, {Tier: wire.TierNVMe}}, wire.TierDRAM},
	}
	for _, c := range cases {
		if got, err := TierFor(c.need, c.offs, p); err != nil || got != c.want {
			t.Errorf("%s: TierFor = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	// With prices that make DRAM the cheaper GiB, a job that fits both
	// goes to DRAM: the choice follows the table, not a fixed rule.
	flip := Prices{DRAMGiBHour: 0.0001, NVMeGiBHour: 0.01, GbpsHour: 0.01}
	if got, _ := TierFor(Need{Mbps: 1000, Bytes: gib}, offers(2, 16000, 16000, 100*gib, 800*gib), flip); got != wire.TierDRAM {
		t.Errorf("DRAM cheaper: TierFor = %v; want dram", got)
	}
}

func TestTierForRefuses(t *testing.T) {
	p := DefaultPrices()
	const gib = 1 << 30
	_, err := TierFor(Need{Bytes: 900 * gib}, offers(2, 16000, 16000, 100*gib, 800*gib), p)
	if !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("900 GiB on 100 + 800: %v; want no space", err)
	}
	for _, s := range []string{"966367641600 bytes", "nvme", "858993459200 bytes", "2 active node"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	_, err = TierFor(Need{Bytes: 200 * gib, LatencySensitive: true}, offers(2, 16000, 16000, 100*gib, 800*gib), p)
	if !errors.Is(err, wire.ErrNoSpace) || !strings.Contains(err.Error(), "latency-sensitive") || !strings.Contains(err.Error(), "dram") {
		t.Fatalf("latency-sensitive 200 GiB over 100 GiB of DRAM: %v", err)
	}
	_, err = TierFor(Need{LatencySensitive: true}, []TierOffer{{Tier: wire.TierNVMe, Nodes: 3, SpareBytes: gib}}, p)
	if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "latency_sensitive=0") {
		// Naming how to leave the hint off: Pocket's register_job sets
		// it by default (a new user's trial could not tell why).
		t.Fatalf("latency-sensitive without DRAM nodes: %v; want unavailable, naming latency_sensitive=0", err)
	}
	if _, err = TierFor(Need{}, nil, p); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("no nodes: %v", err)
	}
}
