package dataplane_test

import (
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/tiertest"
)

func newDRAM(t testing.TB, capacity int64) *dataplane.DRAM {
	t.Helper()
	d, err := dataplane.NewDRAM(capacity, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatalf("NewDRAM(%d): %v", capacity, err)
	}
	return d
}

func TestDRAMTier(t *testing.T) {
	tiertest.Run(t, func(t *testing.T, capacity int64) dataplane.Tier { return newDRAM(t, capacity) })
}
