package wire

import "testing"

func TestTierRoundTrips(t *testing.T) {
	cases := []struct {
		tier  Tier
		name  string
		flags uint16
	}{
		{TierDRAM, "dram", 0},
		{TierNVMe, "nvme", FlagTierNVMe},
	}
	for _, c := range cases {
		if got := c.tier.String(); got != c.name {
			t.Errorf("Tier(%d).String() = %q, want %q", c.tier, got, c.name)
		}
		if got, err := ParseTier(c.name); err != nil || got != c.tier {
			t.Errorf("ParseTier(%q) = %v, %v; want %v", c.name, got, err, c.tier)
		}
		if got := c.tier.Flags(); got != c.flags {
			t.Errorf("%v.Flags() = %#x, want %#x", c.tier, got, c.flags)
		}
		if got := TierOfFlags(c.tier.Flags() | FlagPersist); got != c.tier {
			t.Errorf("TierOfFlags(%v.Flags()) = %v", c.tier, got)
		}
	}
}

func TestTierNumbersAreWireFormat(t *testing.T) {
	if TierDRAM != 1 || TierNVMe != 2 {
		t.Fatalf("tier numbers changed: dram %d nvme %d (they travel on the wire)", TierDRAM, TierNVMe)
	}
}

func TestTierUnknown(t *testing.T) {
	if got := Tier(7).String(); got != "tier(7)" {
		t.Errorf("Tier(7).String() = %q", got)
	}
	for _, name := range []string{"", "DRAM", "ssd", "tier(7)"} {
		if _, err := ParseTier(name); err == nil {
			t.Errorf("ParseTier(%q) accepted", name)
		}
	}
}
