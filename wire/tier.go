package wire

import (
	"fmt"
	"strconv"
)

// Tier names a storage tier's medium: the one definition shared by the data
// plane (dataplane.Kind), the SDK (pocket.Tier), the controller and the CLI.
// The numbers travel on the wire (TierStat.Kind, PlacementMap.Tier,
// JobStatus.Tier) and must not change.
type Tier uint8

// Tiers.
const (
	TierDRAM Tier = 1
	TierNVMe Tier = 2
)

// String returns the tier's name as ParseTier reads it ("dram", "nvme"), or
// "tier(N)" for a number this build does not know.
func (t Tier) String() string {
	switch t {
	case TierDRAM:
		return "dram"
	case TierNVMe:
		return "nvme"
	}
	return "tier(" + strconv.Itoa(int(t)) + ")"
}

// Flags returns the request header flag that routes a data-plane request
// to the tier: FlagTierNVMe for NVMe, 0 (the DRAM tier) otherwise.
func (t Tier) Flags() uint16 {
	if t == TierNVMe {
		return FlagTierNVMe
	}
	return 0
}

// TierOfFlags is the inverse of Flags: the tier a request's header flags
// route it to.
func TierOfFlags(flags uint16) Tier {
	if flags&FlagTierNVMe != 0 {
		return TierNVMe
	}
	return TierDRAM
}

// ParseTier reads a tier name as String writes it ("dram" or "nvme"), for
// command-line flags and configuration.
func ParseTier(name string) (Tier, error) {
	switch name {
	case "dram":
		return TierDRAM, nil
	case "nvme":
		return TierNVMe, nil
	}
	return 0, fmt.Errorf("wire: unknown tier %q (want dram or nvme)", name)
}
