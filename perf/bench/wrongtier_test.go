package bench

import (
	"errors"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// TestWrongTierEndsTheRun: a node's refusal of the run's tier (the job was
// placed on the other, or the node has no such tier) ends the run and
// says to pass --tier, as a refused job does. Before, a put run of a job
// placed on NVMe with the default --tier dram counted 455,976 refusals in
// 15 s (a new user's trial).
func TestWrongTierEndsTheRun(t *testing.T) {
	r := &client.Response{Op: wire.OpPut.Reply(), Code: wire.CodeUnsupported,
		Meta: wire.NewEncoder().ErrorResponse(wire.Errorf(wire.CodeUnsupported, "the job was placed on the nvme tier"))}
	err := checkPocket(wire.OpPut, r, 0)
	if !errors.Is(err, ErrWrongTier) || !persistent(err) {
		t.Fatalf("a refused tier: %v (persistent %v), want ErrWrongTier ending the run", err, persistent(err))
	}
}
